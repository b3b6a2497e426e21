//! Task XML against the XSD written from Microsoft's published Task Scheduler schema
//! (tests/schema/task.xsd, checked with `xmllint --schema`): the triggers of every corpus
//! expression, the catch-up task that sync registers and runs through a recording fake
//! `schtasks`, and a wrongly ordered trigger that the schema must refuse.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

const XSD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schema/task.xsd");

/// Writes `xml` as UTF-16LE with a BOM, the form restic-fleet writes task XML in.
fn write_utf16(path: &Path, xml: &str) {
    let mut bytes = vec![0xFF, 0xFE];
    for u in xml.encode_utf16() {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

fn xmllint(files: &[PathBuf]) -> std::process::Output {
    Command::new("xmllint")
        .args(["--noout", "--schema", XSD])
        .args(files)
        .output()
        .expect("xmllint (Debian package libxml2-utils)")
}

fn task_with(triggers: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<Task version=\"1.2\" \
         xmlns=\"http://schemas.microsoft.com/windows/2004/02/mit/task\">\n  {triggers}\n  \
         <Actions Context=\"Author\"><Exec><Command>restic-fleet.exe</Command></Exec></Actions>\n  \
         <Principals><Principal id=\"Author\"><UserId>S-1-5-18</UserId></Principal></Principals>\n</Task>\n"
    )
}

#[test]
fn the_schema_refuses_a_trigger_in_the_wrong_order() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.xml");
    write_utf16(
        &good,
        &task_with(
            "<Triggers><CalendarTrigger><Enabled>true</Enabled>\
             <StartBoundary>2027-01-01T02:30:00</StartBoundary>\
             <ScheduleByDay><DaysInterval>1</DaysInterval></ScheduleByDay></CalendarTrigger></Triggers>",
        ),
    );
    let out = xmllint(std::slice::from_ref(&good));
    assert!(out.status.success(), "{}", stderr(&out));
    // Windows' export order (Repetition ... Enabled) is not the published sequence.
    let bad = dir.path().join("bad.xml");
    write_utf16(
        &bad,
        &task_with(
            "<Triggers><CalendarTrigger><Repetition><Interval>PT1H</Interval></Repetition>\
             <StartBoundary>2027-01-01T02:30:00</StartBoundary><Enabled>true</Enabled>\
             <ScheduleByDay><DaysInterval>1</DaysInterval></ScheduleByDay></CalendarTrigger></Triggers>",
        ),
    );
    let out = xmllint(&[bad]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("StartBoundary"), "{}", stderr(&out));
}

#[test]
fn the_triggers_of_every_corpus_expression_follow_the_schema() {
    let bin = env!("CARGO_BIN_EXE_restic-fleet");
    let corpus = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/oracle/corpus.txt"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let exprs: Vec<&str> = corpus
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for (i, e) in exprs.iter().enumerate() {
        // Europe/Prague across the spring change: the daylight-saving segments too.
        let out = Command::new(bin)
            .args(["schedule", "preview", "--cron", e, "--tz", "Europe/Prague"])
            .args(["--from", "2027-03-20T00:00:00Z", "--count", "1", "--json"])
            .output()
            .unwrap();
        assert_ok(&out);
        let p: Value = serde_json::from_slice(&out.stdout).unwrap();
        let f = dir.path().join(format!("{i}.xml"));
        write_utf16(&f, &task_with(p["windows_triggers_xml"].as_str().unwrap()));
        files.push(f);
    }
    for secs in ["60", "3600", "86400", "604800", "2147483647"] {
        let out = Command::new(bin)
            .args(["schedule", "preview", "--interval", secs, "--json"])
            .output()
            .unwrap();
        assert_ok(&out);
        let p: Value = serde_json::from_slice(&out.stdout).unwrap();
        let f = dir.path().join(format!("interval-{secs}.xml"));
        write_utf16(&f, &task_with(p["windows_triggers_xml"].as_str().unwrap()));
        files.push(f);
    }
    assert!(files.len() > 250);
    let out = xmllint(&files);
    let err = stderr(&out);
    let failures: Vec<&str> = err
        .lines()
        .filter(|l| !l.ends_with(" validates"))
        .take(20)
        .collect();
    assert!(out.status.success(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn windows_catch_up_is_registered_and_run_through_task_scheduler() {
    let env = Env::with_repo().await;
    let (bin, log) = fake_tool(
        &env,
        "schtasks",
        r#"if [ "$1" = /Create ] && [ ! -f "$5" ]; then echo missing xml >&2; exit 1; fi
if [ "$1" = /Create ]; then cp "$5" "$(dirname "$0")/../last-created.xml"; fi"#,
    );
    let src = env.make_source("src", 1);
    let job = env.add_job("laptop", &[&src]).await;
    let s = add_cron(&env, job, "0 9 * * *").await;
    sqlx::query("UPDATE schedules SET next_run_at = NOW() - INTERVAL '3 hours' WHERE id = $1")
        .bind(s)
        .execute(&env.pool)
        .await
        .unwrap();
    let (code, r) = sync_json(&env, &bin, &["--backend", "windows"]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(r["missed"][0]["catch_up"], "started", "{r:#}");
    let task = format!("\\restic-fleet\\restic-fleet-catchup-{job}");
    let c = calls(&log);
    let create = c
        .iter()
        .position(|l| l.starts_with(&format!("/Create /TN {task} /XML ")))
        .unwrap_or_else(|| panic!("{c:?}"));
    let run = c
        .iter()
        .position(|l| l == &format!("/Run /TN {task}"))
        .unwrap_or_else(|| panic!("{c:?}"));
    assert!(create < run, "{c:?}");
    // Nothing ran it here: no run was started behind Task Scheduler's back.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let xml = env.dir.path().join("last-created.xml");
    let out = xmllint(std::slice::from_ref(&xml));
    assert!(out.status.success(), "{}", stderr(&out));
    let raw = std::fs::read(&xml).unwrap();
    let units: Vec<u16> = raw[2..]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let text = String::from_utf16(&units).unwrap();
    assert!(text.contains("<Triggers />"), "{text}");
    assert!(
        text.contains(&format!("run {job} --triggered-by missed")),
        "{text}"
    );
    // The catch-up task is no schedule: the next sync neither lists nor deletes it.
    let (_, r) = sync_json(&env, &bin, &["--backend", "windows", "--no-catch-up"]);
    assert!(!r["removed"].to_string().contains("catchup"), "{r:#}");
}
