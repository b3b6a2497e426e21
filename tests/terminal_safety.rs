//! A compromised device cannot drive the admin's terminal: a device, through its own database
//! role, writes escape sequences (OSC 52 clipboard write, clear screen, carriage return, C1 CSI,
//! bidi override) into its run rows, its device row and the repository, and every human command
//! an admin runs shows them as visible escapes, with ordinary text unchanged. `--json` carries
//! the same strings, escaped so that a terminal does not act on them either.
//!
//! Roles are cluster-wide and tests run in parallel: the device id (and so its role) is unique,
//! and `db roles` gets the same passwords as tests/security.rs and tests/admin_roles.rs.

mod common;

use std::process::{Output, Stdio};

use common::*;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;

/// Everything a hostile device might write into a string.
const EVIL: &str = "a\x1b]52;c;cHduZWQ=\x07b\x1b[2Jc\rd\u{9b}31me\u{202e}f\x08g";
/// How [`EVIL`]'s dangerous parts must look on screen.
const SHOWN: [&str; 6] = [
    "\\x1b]52;c;cHduZWQ=\\x07",
    "\\x1b[2J",
    "\\r",
    "\\u{9b}31m",
    "\\u{202e}",
    "\\x08",
];
/// Ordinary non-ASCII text that must come through as it is.
const NICE: &str = "Büro ☃";

const ADMIN_PW: &str = "admin-pw";
const VIEWER_PW: &str = "viewer-pw";

fn rf(env: &Env, args: &[&str]) -> Output {
    env.cmd().args(args).stdin(Stdio::null()).output().unwrap()
}

/// A character a terminal would act on (or reorder text by); a newline ends a line and is fine.
fn dangerous(c: char) -> bool {
    (c.is_control() && c != '\n') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `args` succeeds (or fails with exit 1, `status`'s "attention needed") and prints no
/// dangerous character on stdout or stderr; returns stdout.
fn safe_output(env: &Env, args: &[&str]) -> String {
    let out = rf(env, args);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8(bytes.clone()).expect("output is UTF-8");
        let bad: Vec<String> = text
            .chars()
            .filter(|c| dangerous(*c))
            .map(|c| format!("U+{:04X}", c as u32))
            .collect();
        assert!(
            bad.is_empty(),
            "{args:?} wrote {bad:?} raw to {stream}:\n{}",
            text.escape_debug()
        );
    }
    stdout(&out)
}

fn assert_escaped(args: &[&str], text: &str) {
    for s in SHOWN {
        assert!(text.contains(s), "{args:?} does not show {s}:\n{text}");
    }
}

#[tokio::test]
async fn device_written_escape_sequences_are_shown_escaped() {
    let env = Env::with_repo().await;
    // ---- A device with its own role (db roles, device enroll), as in tests/security.rs. ----
    let admin_pw = env.dir.path().join("admin.pw");
    let viewer_pw = env.dir.path().join("viewer.pw");
    std::fs::write(&admin_pw, format!("{ADMIN_PW}\n")).unwrap();
    std::fs::write(&viewer_pw, format!("{VIEWER_PW}\n")).unwrap();
    let out = env
        .cmd()
        .args(["db", "roles", "--database-url", &env.url])
        .arg("--admin-password-file")
        .arg(&admin_pw)
        .arg("--viewer-password-file")
        .arg(&viewer_pw)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&out);
    let id = format!("evil-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let out = rf(
        &env,
        &["device", "enroll", &id, "--platform", "linux", "--json"],
    );
    assert_ok(&out);
    let enrolled: Value = serde_json::from_slice(&out.stdout).unwrap();
    let device_url = enrolled["database_url"].as_str().unwrap().to_string();

    // The admin gives it two jobs: one with an ordinary non-ASCII name.
    let mut jobs = Vec::new();
    for name in [NICE, "docs"] {
        let job: uuid::Uuid = sqlx::query_scalar(
            "INSERT INTO backup_jobs (device_id, name, source_paths) \
             VALUES ($1, $2, ARRAY['/srv']) RETURNING id",
        )
        .bind(&id)
        .bind(name)
        .fetch_one(&env.pool)
        .await
        .unwrap();
        jobs.push(job);
    }

    // ---- The compromised device writes, through its own role only. ----
    let device = PgPoolOptions::new()
        .max_connections(1)
        .connect(&device_url)
        .await
        .expect("the device's role connects");
    sqlx::query(
        "UPDATE devices SET name = $2, hostname = $3, last_seen = NOW(), \
         metadata = jsonb_build_object('client_version', $3::text) WHERE id = $1",
    )
    .bind(&id)
    .bind(format!("{NICE} {EVIL}"))
    .bind(EVIL)
    .execute(&device)
    .await
    .unwrap();
    let failed: i32 = sqlx::query_scalar(
        "INSERT INTO runs (job_id, device_id, start_time, end_time, status, exit_code, \
         error_message, restic_output, restic_errors, snapshot_id, triggered_by, metadata) \
         VALUES ($1, $2, NOW() - interval '2 minutes', NOW() - interval '1 minute', 'failed', 1, \
         $3, $4, $3, $3, $3, $5) RETURNING id",
    )
    .bind(jobs[0])
    .bind(&id)
    .bind(EVIL)
    .bind(format!("line one\n{EVIL}\r\nline three\n"))
    .bind(json!({"hooks": [{
        "hook": EVIL, "command": EVIL, "exit_code": 1, "duration_ms": 5,
        "stdout": format!("{EVIL}\nsecond"), "stderr": EVIL
    }]}))
    .fetch_one(&device)
    .await
    .unwrap();
    let warned: i32 = sqlx::query_scalar(
        "INSERT INTO runs (job_id, device_id, start_time, end_time, status, exit_code, \
         snapshot_id, metadata) \
         VALUES ($1, $2, NOW() - interval '2 minutes', NOW() - interval '1 minute', 'success', 3, \
         $3, $4) RETURNING id",
    )
    .bind(jobs[1])
    .bind(&id)
    .bind(EVIL)
    .bind(json!({"warnings": [EVIL, NICE], "missing_paths": [EVIL]}))
    .fetch_one(&device)
    .await
    .unwrap();
    device.close().await;

    // ---- What the admin sees. ----
    let status = safe_output(&env, &["status"]);
    assert_escaped(&["status"], &status);
    assert!(status.contains(NICE), "{status}");
    let list = safe_output(&env, &["runs", "list"]);
    assert!(list.contains(NICE), "{list}");
    // the snapshot column is a prefix of 8 characters: the ESC at its second place shows
    assert!(list.contains("a\\x1b]52;"), "{list}");
    for run in [failed, warned] {
        let args = ["runs", "show", &run.to_string()];
        let shown = safe_output(&env, &args);
        assert!(shown.contains("\\x1b[2J"), "{shown}");
        if run == failed {
            assert_escaped(&args, &shown);
            // restic's output keeps its lines (a CRLF end is a line end), nothing else
            assert!(
                shown.contains("line one\na\\x1b]52;c;cHduZWQ=\\x07b\\x1b[2Jc\\rd"),
                "{shown}"
            );
            assert!(shown.contains("g\nline three"), "{shown}");
            assert!(shown.contains(&format!("job:         {NICE} (")), "{shown}");
        }
    }
    for args in [
        vec!["device", "list"],
        vec!["device", "show", &id],
        vec!["job", "list"],
        vec!["job", "show", &jobs[0].to_string()],
    ] {
        let shown = safe_output(&env, &args);
        assert!(shown.contains(NICE), "{args:?}: {shown}");
        if args[0] == "device" || args[1] == "show" {
            assert!(shown.contains("\\x1b[2J"), "{args:?}: {shown}");
        }
        if args[1] == "show" {
            assert_escaped(&args, &shown);
        }
    }

    // --json: the very same strings, but nothing a terminal acts on.
    let json = safe_output(&env, &["runs", "show", &failed.to_string(), "--json"]);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["error_message"], EVIL, "{json}");
    let json = safe_output(&env, &["status", "--json"]);
    let v: Value = serde_json::from_str(&json).unwrap();
    let devices = v["devices"].as_array().unwrap();
    let me = devices.iter().find(|d| d["device_id"] == id.as_str());
    assert_eq!(me.unwrap()["name"], format!("{NICE} {EVIL}"), "{json}");

    // ---- The repository is written by devices too: a snapshot with a hostile host name
    // (short, so that its table cell does not wrap). ----
    let src = env.make_source("src", 1);
    let out = env.restic(&[
        "backup",
        "--host",
        "h\x1b[2J\u{202e}",
        "--tag",
        &format!("backup:{}", jobs[0]),
        src.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let snaps = safe_output(&env, &["snapshots"]);
    assert!(snaps.contains("h\\x1b[2J\\u{202e}"), "{snaps}");

    // ---- A spool file (the device's own state directory) with a hostile name. ----
    let spool = env.state_dir().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(spool.join(format!("2027{EVIL}.json")), b"{\"torn").unwrap();
    let listed = safe_output(&env, &["spool", "list"]);
    assert_escaped(&["spool", "list"], &listed);
}
