//! Understanding restic: its `--json` messages (0.14 through 0.19), its exit codes, and the
//! bounded transcript stored in `runs.restic_output` / `runs.restic_errors`.

pub mod args;
pub mod backend_env;

use serde::Deserialize;
use serde_json::Value;

use crate::domain::settings::Settings;

/// At most this many bytes of stdout and of stderr are stored per run (1 MiB each). When more
/// arrives, the first half and the last half of the budget are kept with a marker between them,
/// so that both the start of a run and its summary survive.
pub const OUTPUT_CAP_BYTES: usize = 1024 * 1024;

/// restic exit codes (restic 0.17+ ends with 10 and 11, 0.17.1+ with 12; 0.14 uses 1 for all of those).
pub mod code {
    pub const OK: i32 = 0;
    pub const FATAL: i32 = 1;
    pub const GO_RUNTIME: i32 = 2;
    pub const INCOMPLETE: i32 = 3;
    pub const NO_REPOSITORY: i32 = 10;
    pub const LOCK_FAILED: i32 = 11;
    pub const WRONG_PASSWORD: i32 = 12;
    pub const INTERRUPTED: i32 = 130;
}

/// The `summary` message of `restic backup --json`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Summary {
    pub files_new: Option<i64>,
    pub files_changed: Option<i64>,
    pub files_unmodified: Option<i64>,
    pub dirs_new: Option<i64>,
    pub dirs_changed: Option<i64>,
    pub dirs_unmodified: Option<i64>,
    pub data_added: Option<i64>,
    pub total_files_processed: Option<i64>,
    pub total_bytes_processed: Option<i64>,
    pub total_duration: Option<f64>,
    pub snapshot_id: Option<String>,
}

/// The `summary` message of `restic check --json` (0.18+).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
pub struct CheckSummary {
    #[serde(default)]
    pub num_errors: u64,
    #[serde(default)]
    pub broken_packs: Option<Vec<String>>,
    #[serde(default)]
    pub suggest_repair_index: bool,
    #[serde(default)]
    pub suggest_prune: bool,
}

/// The summary `restic check --json` printed, if it printed one.
pub fn check_summary(stdout: &str) -> Option<CheckSummary> {
    stdout.lines().find_map(|l| {
        let v: Value = serde_json::from_str(l.trim()).ok()?;
        if v.get("message_type")?.as_str()? != "summary" {
            return None;
        }
        serde_json::from_value(v).ok()
    })
}

/// Why `restic check --json` found the repository damaged, in one sentence: how many errors,
/// the first one restic named, and what restic suggests.
pub fn check_failure(summary: &CheckSummary, stderr: &str, repository: &str) -> String {
    let first = stderr.lines().find_map(|l| match parse_line(l) {
        Line::Error(e) if !e.is_empty() => Some(first_line(&e)),
        _ => None,
    });
    let advice = if summary.suggest_repair_index {
        "run `restic repair index`, then `restic check` again"
    } else if summary.suggest_prune {
        "run `restic prune`, then `restic check` again"
    } else {
        "repair it as restic's troubleshooting guide says \
         (https://restic.readthedocs.io/en/stable/077_troubleshooting.html)"
    };
    format!(
        "restic check found {} error(s) in the repository {}{}; {advice}",
        summary.num_errors,
        crate::domain::text::mask_url(repository),
        first
            .map(|f| format!(", the first: {f}"))
            .unwrap_or_default()
    )
}

/// The `status` message (sent several times a second).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Status {
    #[serde(default)]
    pub percent_done: f64,
    #[serde(default)]
    pub total_files: u64,
    #[serde(default)]
    pub files_done: u64,
    #[serde(default)]
    pub total_bytes: u64,
    #[serde(default)]
    pub bytes_done: u64,
    #[serde(default)]
    pub seconds_remaining: Option<u64>,
    #[serde(default)]
    pub error_count: u64,
}

/// One line of restic's output, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Status(Status),
    Summary(Summary),
    /// An `error` message (a file that could not be read, ...): its text.
    Error(String),
    /// An `exit_error` message (restic 0.18+): the fatal reason.
    ExitError(String),
    /// Any other JSON message (verbose_status, ...).
    OtherJson,
    /// Plain text.
    Text,
}

/// Classifies one output line.
pub fn parse_line(line: &str) -> Line {
    let trimmed = line.trim();
    if !trimmed.starts_with('{') {
        return Line::Text;
    }
    let Ok(value) = serde_json::from_str::<Value>(trimmed) else {
        return Line::Text;
    };
    match value.get("message_type").and_then(Value::as_str) {
        Some("status") => Line::Status(serde_json::from_value(value).unwrap_or_default()),
        Some("summary") => Line::Summary(serde_json::from_value(value).unwrap_or_default()),
        Some("error") => Line::Error(error_text(&value)),
        Some("exit_error") => Line::ExitError(
            value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("restic reported a fatal error")
                .trim()
                .to_string(),
        ),
        _ => Line::OtherJson,
    }
}

/// The text of an `error` message in any version's shape:
/// 0.14-0.16 `{"error":{"Op":"lstat","Path":"x","Err":2},"item":"x"}`,
/// 0.17.1+ `{"error":{"message":"..."},"during":"archival","item":"x"}`.
fn error_text(value: &Value) -> String {
    let item = value.get("item").and_then(Value::as_str).unwrap_or("");
    let err = value.get("error");
    let msg = match err {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => {
            if let Some(m) = o.get("message").and_then(Value::as_str) {
                m.to_string()
            } else {
                let op = o.get("Op").and_then(Value::as_str).unwrap_or("access");
                let errno = o.get("Err").and_then(Value::as_i64);
                match errno {
                    Some(n) => format!("{op} failed ({})", errno_text(n)),
                    None => format!("{op} failed"),
                }
            }
        }
        // `check --json` (0.18+): {"message_type":"error","message":"pack ...: does not exist\n"}
        _ => value
            .get("message")
            .and_then(Value::as_str)
            .map_or("error", str::trim)
            .to_string(),
    };
    if item.is_empty() || msg.contains(item) {
        msg
    } else {
        format!("{item}: {msg}")
    }
}

fn errno_text(n: i64) -> String {
    match n {
        1 => "operation not permitted".into(),
        2 => "no such file or directory".into(),
        5 => "input/output error".into(),
        13 => "permission denied".into(),
        20 => "not a directory".into(),
        _ => format!("errno {n}"),
    }
}

/// A bounded buffer for a transcript: keeps the head and the tail of what it is given.
#[derive(Debug, Default)]
pub struct Transcript {
    head: String,
    tail: std::collections::VecDeque<String>,
    tail_bytes: usize,
    dropped_bytes: usize,
    cap: usize,
}

impl Transcript {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            ..Default::default()
        }
    }

    pub fn push_line(&mut self, line: &str) {
        let half = self.cap / 2;
        if self.head.len() + line.len() < half && self.tail.is_empty() {
            self.head.push_str(line);
            self.head.push('\n');
            return;
        }
        let line = crate::domain::text::truncate_str(line, half.saturating_sub(1)).to_string();
        self.tail_bytes += line.len() + 1;
        self.tail.push_back(line);
        while self.tail_bytes > half {
            if let Some(old) = self.tail.pop_front() {
                self.tail_bytes -= old.len() + 1;
                self.dropped_bytes += old.len() + 1;
            } else {
                break;
            }
        }
    }

    pub fn finish(self) -> String {
        let mut out = self.head;
        if self.dropped_bytes > 0 {
            out.push_str(&format!(
                "[restic-fleet: {} bytes of output omitted here to stay within {} bytes]\n",
                self.dropped_bytes, self.cap
            ));
        }
        for l in self.tail {
            out.push_str(&l);
            out.push('\n');
        }
        out
    }
}

/// Why a restic run failed, in one sentence, from its exit code and what it said.
/// `fatal` holds `exit_error` messages and `Fatal:` lines from stderr; `stderr` the whole text;
/// `settings` (those in force) say where a wrong password or URL is set. restic 0.17+ ends with
/// an exit code for the failures it knows (10, 11, 12) and 0.18+ with an `exit_error` message,
/// which come first; 0.14's text is understood as well. A multi-line message (a lock's holder
/// and age, restic's hint, a stack trace) is kept to its first line.
pub fn failure_reason(
    exit_code: i32,
    fatal: &[String],
    stderr: &str,
    repository: &str,
    settings: &Settings,
) -> String {
    let lower = stderr.to_lowercase();
    let said = first_line(&stated_reason(fatal, stderr));
    let said = meaningful_reason(said.trim_start_matches("Fatal:").trim(), stderr);
    let repo = crate::domain::text::mask_url(repository);
    let said_lower = said.to_lowercase();
    if exit_code == code::WRONG_PASSWORD
        || said_lower.contains("wrong password")
        || lower.contains("wrong password or no key found")
    {
        return format!(
            "restic could not open the repository {repo}: wrong password (restic exit {exit_code}); \
             {}",
            settings.fix_of("repository_password", "-")
        );
    }
    if is_missing_repository(exit_code, stderr) || said_lower.contains("repository does not exist")
    {
        return format!(
            "restic found no repository at {repo} (restic exit {exit_code}): {said}; create it with \
             `restic-fleet repositories init`, or if the URL is wrong: {}",
            settings.fix_of("repository_url", "URL")
        );
    }
    if exit_code == code::LOCK_FAILED || is_lock_message(&said_lower) {
        return format!(
            "the repository {repo} is locked by another restic process (restic exit {exit_code}): \
             {said}; if no other restic runs, the lock is stale and `restic-fleet maintain` on the \
             maintenance owner removes it"
        );
    }
    if exit_code == code::INTERRUPTED {
        return format!("restic was interrupted (exit {exit_code})");
    }
    if said.is_empty() {
        format!("restic failed with exit code {exit_code} and printed no reason")
    } else {
        format!("restic failed (exit {exit_code}): {said}")
    }
}

/// Whether restic said there is no repository at the URL: exit 10 (0.17+), or 0.14's exit 1
/// and "Is there a repository at the following location?". A wrong password (exit 12, or
/// 0.14's message) or an unreachable backend is something else.
pub fn is_missing_repository(exit_code: i32, stderr: &str) -> bool {
    exit_code == code::NO_REPOSITORY
        || stderr
            .to_lowercase()
            .contains("is there a repository at the following location")
}

/// What restic gave as its reason: the last `exit_error` message or `Fatal:` line (from
/// `fatal`, or found in `stderr` when the caller did not classify it); else (0.14 prints a lock
/// failure without `Fatal:`, its last line a hint to `unlock`) the line saying the repository
/// is locked; else its last line.
fn stated_reason(fatal: &[String], stderr: &str) -> String {
    let lines = || stderr.lines().rev().map(str::trim);
    fatal
        .last()
        .cloned()
        .or_else(|| {
            lines().find_map(|l| match parse_line(l) {
                Line::ExitError(m) => Some(m),
                _ => None,
            })
        })
        .or_else(|| {
            lines()
                .find(|l| l.starts_with("Fatal:"))
                .map(str::to_string)
        })
        .or_else(|| {
            lines()
                .find(|l| is_lock_message(&l.to_lowercase()))
                .map(str::to_string)
        })
        .or_else(|| lines().find(|l| !l.is_empty()).map(str::to_string))
        .unwrap_or_default()
}

fn is_lock_message(lower: &str) -> bool {
    lower.contains("unable to create lock") || lower.contains("repository is already locked")
}

/// The first non-empty line of a message.
fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// The short form of a snapshot id that people are shown (restic's own `short_id`).
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A restic version, from the first line of `restic version`
/// (`restic 0.18.0 compiled with go1.24.4 on linux/amd64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    pub fn parse(line: &str) -> Option<Version> {
        let mut words = line.split_whitespace();
        let number = match words.next()? {
            "restic" => words.next()?,
            other => other,
        };
        let mut parts = number.trim_start_matches('v').splitn(3, '.').map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u32>()
        });
        let major = parts.next()?.ok()?;
        let minor = parts.next()?.ok()?;
        let patch = parts.next().and_then(Result::ok).unwrap_or(0);
        Some(Version(major, minor, patch))
    }

    /// `--retry-lock DURATION`: restic waits for the repository lock itself (0.16+).
    pub fn retries_lock(self) -> bool {
        self >= Version(0, 16, 0)
    }

    /// `check --json` prints a summary message (0.18+; 0.14 ignores the flag and prints text).
    pub fn check_json(self) -> bool {
        self >= Version(0, 18, 0)
    }
}

/// restic's fatal line names the layer that failed, which for a backend reached through a
/// program (ssh for sftp:, rclone) is a generic `unable to start the sftp session, error: EOF`;
/// the program's own last line (`subprocess ssh: ssh: connect to host ... Connection refused`)
/// is the meaningful one. It comes first, restic's line after it in brackets.
///
/// restic forwards the program's stderr from a goroutine that loses the race with restic's own
/// exit when the program quits at once (measured with restic 0.14 and an ssh that exits 255
/// right away: 8 times in 60 the `subprocess ssh:` line was missing, and restic said `failed to
/// send packet: write |1: broken pipe` or `EOF`). Without the program's line, an sftp failure
/// says how to see the real cause.
pub fn meaningful_reason(said: &str, stderr: &str) -> String {
    let cause = stderr
        .lines()
        .rev()
        .filter_map(|l| l.trim().strip_prefix("subprocess "))
        .filter_map(|l| l.split_once(": ").map(|(_, rest)| rest.trim()))
        .find(|l| !l.is_empty());
    let lower = said.to_lowercase();
    let generic = said.is_empty()
        || lower.ends_with("eof")
        || lower.contains("unable to start the sftp session")
        || lower.contains("error talking http to rclone");
    match cause {
        Some(c) if generic && said.is_empty() => c.to_string(),
        Some(c) if generic => format!("{c} ({said})"),
        None if lower.contains("unable to start the sftp session") => format!(
            "{said} (the ssh command restic started ended before the sftp session began; run \
             `ssh` to the repository's host as this user to see why)"
        ),
        _ => said.to_string(),
    }
}

/// Lines restic 0.14 prints on stderr for a source path it skips (`X does not exist, skipping`).
pub fn skipped_paths(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.trim().strip_suffix(" does not exist, skipping"))
        .map(str::to_string)
        .collect()
}

/// The full id of the one snapshot that `restic snapshots --json ID` listed for `short`, if
/// it listed exactly one and its id extends `short`.
pub fn full_snapshot_id(snapshots_json: &[u8], short: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Snap {
        id: String,
    }
    let list: Vec<Snap> = serde_json::from_slice(snapshots_json).ok()?;
    match list.as_slice() {
        [one] if one.id.len() == 64 && one.id.starts_with(short) => Some(one.id.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_snapshot_id_needs_exactly_one_matching_snapshot() {
        let id = "2f8aaa3d".to_string() + &"0".repeat(56);
        let one = format!(r#"[{{"id":"{id}","short_id":"2f8aaa3d","paths":["/x"]}}]"#);
        assert_eq!(
            full_snapshot_id(one.as_bytes(), "2f8aaa3d"),
            Some(id.clone())
        );
        assert_eq!(full_snapshot_id(one.as_bytes(), "2f8aaa3e"), None);
        let two = format!(r#"[{{"id":"{id}"}},{{"id":"{id}"}}]"#);
        assert_eq!(full_snapshot_id(two.as_bytes(), "2f8aaa3d"), None);
        assert_eq!(full_snapshot_id(b"[]", "2f8aaa3d"), None);
        assert_eq!(full_snapshot_id(b"not json", "2f8aaa3d"), None);
    }

    #[test]
    fn classifies_0_14_lines() {
        let s = parse_line(
            r#"{"message_type":"status","percent_done":0.5,"total_files":4,"files_done":2,"total_bytes":10,"bytes_done":5,"seconds_remaining":3}"#,
        );
        match s {
            Line::Status(st) => {
                assert_eq!(st.files_done, 2);
                assert_eq!(st.seconds_remaining, Some(3));
            }
            other => panic!("{other:?}"),
        }
        let sum = parse_line(
            r#"{"message_type":"summary","files_new":1,"files_changed":0,"files_unmodified":0,"dirs_new":1,"dirs_changed":0,"dirs_unmodified":0,"data_blobs":1,"tree_blobs":2,"data_added":707,"total_files_processed":1,"total_bytes_processed":3,"total_duration":0.2,"snapshot_id":"2f8aaa3d"}"#,
        );
        match sum {
            Line::Summary(s) => {
                assert_eq!(s.snapshot_id.as_deref(), Some("2f8aaa3d"));
                assert_eq!(s.data_added, Some(707));
                assert_eq!(s.dirs_new, Some(1));
            }
            other => panic!("{other:?}"),
        }
        let e = parse_line(
            r#"{"message_type":"error","error":{"Op":"lstat","Path":"src/a/x","Err":20},"during":"archival","item":"/tmp/src/a/x"}"#,
        );
        assert_eq!(
            e,
            Line::Error("/tmp/src/a/x: lstat failed (not a directory)".into())
        );
        assert_eq!(parse_line("Fatal: boom"), Line::Text);
        assert_eq!(parse_line("{not json"), Line::Text);
    }

    #[test]
    fn classifies_0_17_lines() {
        let e = parse_line(
            r#"{"message_type":"error","error":{"message":"open /x: permission denied"},"during":"archival","item":"/x"}"#,
        );
        assert_eq!(e, Line::Error("open /x: permission denied".into()));
        let x = parse_line(
            r#"{"message_type":"exit_error","code":12,"message":"Fatal: wrong password or no key found"}"#,
        );
        assert_eq!(
            x,
            Line::ExitError("Fatal: wrong password or no key found".into())
        );
    }

    #[test]
    fn reasons_for_known_failures() {
        let none = Settings::default();
        let r = failure_reason(
            1,
            &[],
            "Fatal: wrong password or no key found\n",
            "/r",
            &none,
        );
        assert!(r.contains("wrong password"), "{r}");
        let r = failure_reason(
            12,
            &["Fatal: wrong password or no key found".into()],
            "",
            "/r",
            &none,
        );
        assert!(r.contains("wrong password") && r.contains("exit 12"), "{r}");
        assert!(r.contains("global setting"), "{r}");
        let own = Settings::from_pairs([("repository_password".into(), "x".into())])
            .with_own("my pc", ["repository_password".to_string()]);
        let r = failure_reason(12, &[], "Fatal: wrong password", "/r", &own);
        assert!(
            r.contains("device \"my pc\"'s own")
                && r.contains("`restic-fleet settings set repository_password - --device 'my pc'`"),
            "{r}"
        );
        let r = failure_reason(
            1,
            &[],
            "Fatal: unable to open config file: stat /n/config: no such file or directory\nIs there a repository at the following location?\n/n\n",
            "/n",
            &none,
        );
        assert!(r.contains("no repository at /n"), "{r}");
        let r = failure_reason(
            10,
            &["Fatal: repository does not exist".into()],
            "",
            "s3:x",
            &none,
        );
        assert!(r.contains("no repository"), "{r}");
        let r = failure_reason(
            11,
            &[],
            "Fatal: unable to create lock in backend: repository is already locked exclusively by PID 1",
            "/r",
            &none,
        );
        assert!(r.contains("locked"), "{r}");
        let r = failure_reason(7, &[], "", "/r", &none);
        assert!(r.contains("exit code 7"), "{r}");
    }

    /// What a version printed for a case, recorded from the real binary
    /// (tests/fixtures/restic/README.md).
    macro_rules! fixture {
        ($version:literal, $case:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/restic/",
                $version,
                "/",
                $case
            ))
        };
    }

    /// The reason `run` records for what restic printed on stderr, classified line by line as
    /// the backup does.
    fn reason_of(exit_code: i32, stderr: &str) -> String {
        let fatal: Vec<String> = stderr
            .lines()
            .filter_map(|l| match parse_line(l) {
                Line::ExitError(m) => Some(m),
                Line::Text if l.starts_with("Fatal:") => Some(l.to_string()),
                _ => None,
            })
            .collect();
        failure_reason(
            exit_code,
            &fatal,
            stderr,
            "/tmp/fx/repo",
            &Settings::default(),
        )
    }

    #[test]
    fn exit_error_messages_are_found_in_stderr_too() {
        // `snapshots --json` and the other repository commands hand over stderr unclassified.
        for (code, stderr) in [
            (11, fixture!("0.18", "locked.stderr")),
            (10, fixture!("0.19", "no_repository.stderr")),
            (1, fixture!("0.19", "cache_unusable.stderr")),
        ] {
            let r = failure_reason(code, &[], stderr, "/tmp/fx/repo", &Settings::default());
            assert_eq!(r, reason_of(code, stderr));
            assert!(!r.contains("message_type"), "{r}");
        }
    }

    #[test]
    fn wrong_password_of_every_version() {
        for (code, stderr) in [
            (1, fixture!("0.14", "wrong_password.stderr")),
            (12, fixture!("0.18", "wrong_password.stderr")),
            (12, fixture!("0.19", "wrong_password.stderr")),
        ] {
            let r = reason_of(code, stderr);
            assert_eq!(
                r,
                format!(
                    "restic could not open the repository /tmp/fx/repo: wrong password (restic \
                     exit {code}); the repository_password in force is the global setting, so \
                     set the right one with `restic-fleet settings set repository_password -`"
                )
            );
        }
    }

    #[test]
    fn a_missing_repository_is_one_sentence_in_every_version() {
        for (code, stderr) in [
            (1, fixture!("0.14", "no_repository.stderr")),
            (10, fixture!("0.18", "no_repository.stderr")),
            (10, fixture!("0.19", "no_repository.stderr")),
        ] {
            let r = reason_of(code, stderr);
            assert!(!r.contains('\n'), "{r}");
            assert!(
                r.starts_with(&format!(
                    "restic found no repository at /tmp/fx/repo (restic exit {code}): "
                )),
                "{r}"
            );
            assert!(
                r.contains(
                    "stat /tmp/fx/nonexist/config: no such file or directory; create it with \
                     `restic-fleet repositories init`"
                ),
                "{r}"
            );
        }
    }

    #[test]
    fn a_lock_failure_gives_the_holder_in_one_sentence_in_every_version() {
        for (code, stderr, pid) in [
            (1, fixture!("0.14", "locked.stderr"), 6081),
            (11, fixture!("0.18", "locked.stderr"), 6187),
            (11, fixture!("0.18", "locked_retry.stderr"), 6187),
            (11, fixture!("0.19", "locked.stderr"), 6801),
            (11, fixture!("0.19", "locked_retry.stderr"), 6801),
        ] {
            let r = reason_of(code, stderr);
            assert_eq!(
                r,
                format!(
                    "the repository /tmp/fx/repo is locked by another restic process (restic \
                     exit {code}): unable to create lock in backend: repository is already \
                     locked exclusively by PID {pid} on vm by root (UID 0, GID 0); if no other \
                     restic runs, the lock is stale and `restic-fleet maintain` on the \
                     maintenance owner removes it"
                )
            );
        }
    }

    #[test]
    fn restic_0_19s_stack_trace_is_cut_to_its_first_line() {
        let r = reason_of(1, fixture!("0.19", "cache_unusable.stderr"));
        assert_eq!(
            r,
            "restic failed (exit 1): mkdir /proc/nope: no such file or directory"
        );
    }

    #[test]
    fn the_summary_of_every_version_carries_its_snapshot_id() {
        let id = |stdout: &str| {
            stdout.lines().find_map(|l| match parse_line(l) {
                Line::Summary(s) => s.snapshot_id,
                _ => None,
            })
        };
        let short = id(fixture!("0.14", "missing_path.stdout")).unwrap();
        assert_eq!(short, "ce24b184");
        assert_eq!(short_id(&short), "ce24b184");
        for full in [
            id(fixture!("0.18", "missing_path.stdout")).unwrap(),
            id(fixture!("0.19", "missing_path.stdout")).unwrap(),
        ] {
            assert_eq!(full.len(), 64, "{full}");
            assert_eq!(short_id(&full), &full[..8]);
        }
        // 0.14 and 0.18 name the missing path and exit 0; 0.19 also says exit 3 in JSON.
        for stderr in [
            fixture!("0.14", "missing_path.stderr"),
            fixture!("0.18", "missing_path.stderr"),
            fixture!("0.19", "missing_path.stderr"),
        ] {
            assert_eq!(skipped_paths(stderr), vec!["/tmp/fx/missing".to_string()]);
        }
        assert_eq!(
            parse_line(
                fixture!("0.19", "missing_path.stderr")
                    .lines()
                    .nth(1)
                    .unwrap()
            ),
            Line::ExitError("Warning: at least one source file could not be read".into())
        );
    }

    #[test]
    fn check_json_of_0_18_and_later() {
        for (stdout, stderr) in [
            (
                fixture!("0.18", "check_broken.stdout"),
                fixture!("0.18", "check_broken.stderr"),
            ),
            (
                fixture!("0.19", "check_broken.stdout"),
                fixture!("0.19", "check_broken.stderr"),
            ),
        ] {
            let summary = check_summary(stdout).unwrap();
            assert_eq!(summary.num_errors, 2);
            let r = check_failure(&summary, stderr, "/tmp/fx/repo");
            assert!(
                r.starts_with(
                    "restic check found 2 error(s) in the repository /tmp/fx/repo, the first: pack "
                ),
                "{r}"
            );
            assert!(r.contains(": does not exist; repair it as restic's"), "{r}");
        }
        for ok in [
            fixture!("0.18", "check.stdout"),
            fixture!("0.19", "check.stdout"),
        ] {
            assert_eq!(check_summary(ok), Some(CheckSummary::default()));
        }
        // 0.14 ignores --json and prints text.
        assert_eq!(check_summary(fixture!("0.14", "check_broken.stdout")), None);
    }

    #[test]
    fn versions_and_what_they_offer() {
        let v = |s| Version::parse(s).unwrap();
        assert_eq!(
            v("restic 0.14.0 compiled with go1.19.8 on linux/amd64"),
            Version(0, 14, 0)
        );
        assert_eq!(v("restic 0.19.1 compiled with go1.26.4"), Version(0, 19, 1));
        assert_eq!(
            v("restic 0.17.0-dev (compiled manually)"),
            Version(0, 17, 0)
        );
        assert_eq!(Version::parse("not installed"), None);
        assert_eq!(Version::parse(""), None);
        assert!(!v("restic 0.15.2").retries_lock() && v("restic 0.16.0").retries_lock());
        assert!(!v("restic 0.17.3").check_json() && v("restic 0.18.0").check_json());
    }

    #[test]
    fn the_programs_own_error_comes_first() {
        let stderr = "subprocess ssh: ssh: connect to host 127.0.0.1 port 22: Connection refused\n\
                      Fatal: unable to open repository at sftp:u@h:/r: unable to start the sftp \
                      session, error: EOF\n";
        let r = failure_reason(1, &[], stderr, "sftp:u@h:/r", &Settings::default());
        assert!(
            r.starts_with(
                "restic failed (exit 1): ssh: connect to host 127.0.0.1 port 22: Connection refused"
            ),
            "{r}"
        );
        assert!(r.contains("unable to start the sftp session"), "{r}");
        // restic lost the program's line (its race): the sentence says how to find the cause.
        let lost = "Fatal: unable to open repository at sftp:u@h:/r: unable to start the sftp \
                    session, error: failed to send packet: write |1: broken pipe\n";
        let r = failure_reason(1, &[], lost, "sftp:u@h:/r", &Settings::default());
        assert!(
            r.contains("broken pipe (the ssh command restic started ended"),
            "{r}"
        );
        // A specific fatal line stays as it is.
        let none = Settings::default();
        let r = failure_reason(
            1,
            &[],
            "subprocess ssh: banner\nFatal: disk full\n",
            "/r",
            &none,
        );
        assert_eq!(r, "restic failed (exit 1): disk full");
    }

    #[test]
    fn transcript_is_bounded_and_keeps_both_ends() {
        let mut t = Transcript::new(1000);
        t.push_line("first line");
        for i in 0..1000 {
            t.push_line(&format!("line {i}"));
        }
        t.push_line("the summary");
        let out = t.finish();
        assert!(out.len() <= 1100, "{}", out.len());
        assert!(out.starts_with("first line\n"));
        assert!(out.ends_with("the summary\n"));
        assert!(out.contains("omitted"));
    }

    #[test]
    fn finds_skipped_paths() {
        assert_eq!(
            skipped_paths("/tmp/rt/nonexist does not exist, skipping\nother\n"),
            vec!["/tmp/rt/nonexist".to_string()]
        );
    }
}
