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

/// restic exit codes (restic 0.17+ documents 10-12; 0.14 uses 1 for all of those).
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
    /// An `exit_error` message (restic 0.17+): the fatal reason.
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
/// 0.17+ `{"error":{"message":"..."},"during":"archival","item":"x"}`.
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
        _ => "error".to_string(),
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
/// `settings` (those in force) say where a wrong password or URL is set.
pub fn failure_reason(
    exit_code: i32,
    fatal: &[String],
    stderr: &str,
    repository: &str,
    settings: &Settings,
) -> String {
    let lower = stderr.to_lowercase();
    let said = fatal
        .last()
        .cloned()
        .or_else(|| {
            stderr
                .lines()
                .rev()
                .find(|l| l.trim_start().starts_with("Fatal:"))
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| {
            stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string()
        });
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
    if exit_code == code::NO_REPOSITORY
        || lower.contains("is there a repository at the following location")
        || said_lower.contains("repository does not exist")
    {
        return format!(
            "restic found no repository at {repo} (restic exit {exit_code}): {said}; create it with \
             `restic init`, or if the URL is wrong: {}",
            settings.fix_of("repository_url", "URL")
        );
    }
    if exit_code == code::LOCK_FAILED
        || said_lower.contains("unable to create lock")
        || said_lower.contains("repository is already locked")
    {
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
