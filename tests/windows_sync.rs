//! `sync --backend windows` on Linux: a recording fake `schtasks` proves the add, no-change,
//! change and remove sequences; golden files for the task XML; schema checks of every XML
//! (tests/oracle/task_eval.py --check); escaping; and a dozen varied jobs through
//! `--dry-run --output-dir` whose triggers the independent evaluator confirms.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use common::*;
use restic_fleet::domain::calendar::CronExpr;
use serde_json::{Value, json};
use uuid::Uuid;

/// The fake schtasks also checks that /Create names an existing XML file.
/// The recording fake refuses a /Create whose XML file is missing, keeps the set of
/// registered task paths in `schtasks.registry` beside its log, and answers
/// `/Query /FO CSV /NH` (not recorded) from it.
const FAKE_SCHTASKS_CHECK: &str = r#"reg="$(dirname "$0")/../schtasks.registry"
if [ "$1" = /Create ] && [ ! -f "$5" ]; then echo missing xml >&2; exit 1; fi
if [ "$1" = /Create ] || [ "$1" = /Delete ]; then
  grep -vxF -e "$3" "$reg" > "$reg.tmp" 2>/dev/null
  [ "$1" = /Create ] && printf '%s\n' "$3" >> "$reg.tmp"
  mv "$reg.tmp" "$reg"
fi
if [ "$1" = /Query ]; then
  [ -f "$reg" ] && sed 's/.*/"&","N\/A","Ready"/' "$reg"
  exit 0
fi"#;

const EVAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/task_eval.py");

fn sync(env: &Env, bin: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["--backend", "windows"];
    args.extend_from_slice(extra);
    sync_json(env, bin, &args)
}

fn read_xml(path: &Path) -> String {
    let raw = std::fs::read(path).unwrap();
    assert_eq!(&raw[..2], &[0xFF, 0xFE], "UTF-16LE BOM");
    let units: Vec<u16> = raw[2..]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).unwrap()
}

fn schema_check(files: &[PathBuf]) {
    assert!(!files.is_empty());
    let out = Command::new("python3")
        .arg(EVAL)
        .arg("--check")
        .args(files)
        .output()
        .unwrap();
    assert!(out.status.success(), "schema check:\n{}", stdout(&out));
    // And against the XSD written from Microsoft's published Task Scheduler schema.
    let out = Command::new("xmllint")
        .args(["--noout", "--schema", TASK_XSD])
        .args(files)
        .output()
        .expect("xmllint (Debian package libxml2-utils)");
    assert!(out.status.success(), "xmllint --schema:\n{}", stderr(&out));
}

const TASK_XSD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schema/task.xsd");

fn xml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    v.sort();
    v
}

fn normalise(text: &str, env: &Env, job: Option<Uuid>) -> String {
    let mut t = text
        .replace(env!("CARGO_BIN_EXE_restic-fleet"), "{BINARY}")
        .replace(env.config_path().to_str().unwrap(), "{CONFIG}");
    if let Some(j) = job {
        t = t.replace(&j.to_string(), "{JOB}");
    }
    // Not run as root: the current user with S4U instead of SYSTEM (the golden files show SYSTEM).
    if let Ok(user) = std::env::var("USER") {
        t = t.replace(
            &format!(
                "<UserId>{user}</UserId>\n      <LogonType>S4U</LogonType>\n      <RunLevel>LeastPrivilege</RunLevel>"
            ),
            "<UserId>S-1-5-18</UserId>\n      <RunLevel>HighestAvailable</RunLevel>",
        );
    }
    t
}

#[tokio::test]
async fn windows_sync_registers_updates_and_deletes_exactly_what_the_database_says() {
    let env = Env::enrolled().await;
    env.set_setting("timezone", "UTC").await;
    let (bin, log) = fake_tool(&env, "schtasks", FAKE_SCHTASKS_CHECK);
    let state = env.dir.path().join("tasks");
    let src = env.make_source("src", 1);
    let daily = env.add_job("daily", &[&src]).await;
    add_cron(&env, daily, "30 2 * * *").await;
    add_cron(&env, daily, "0 12 * * 1-5").await;
    let hourly = env.add_job("interval", &[&src]).await;
    add_interval(&env, hourly, 3600).await;
    let _unscheduled = env.add_job("manual only", &[&src]).await;

    // Add.
    let (code, r) = sync(&env, &bin, &[]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(r["backend"], "windows");
    let mut want = vec![stem(daily), stem(hourly), "restic-fleet-sync".to_string()];
    want.sort();
    assert_eq!(names(&r, "added"), want);
    let mut c = calls(&log);
    c.sort();
    let mut expect: Vec<String> = want
        .iter()
        .map(|n| {
            format!(
                "/Create /TN \\restic-fleet\\{n} /XML {} /F",
                state.join(format!("{n}.xml.new")).display()
            )
        })
        .collect();
    expect.sort();
    assert_eq!(c, expect);
    let files = xml_files(&state);
    assert_eq!(files.len(), 3, "state folder records what was registered");
    schema_check(&files);
    let xml = read_xml(&state.join(format!("{}.xml", stem(daily))));
    golden("windows/daily.xml", &normalise(&xml, &env, Some(daily)));
    let xml = read_xml(&state.join(format!("{}.xml", stem(hourly))));
    // The repetition starts at the slot the database holds (to the second, rounded up).
    let slot = whole_second_slot(&env, hourly).await;
    let boundary = format!("<StartBoundary>{}</StartBoundary>", z(slot));
    assert!(xml.contains(&boundary), "{xml}");
    golden(
        "windows/interval.xml",
        &normalise(&xml, &env, Some(hourly))
            .replace(&boundary, "<StartBoundary>{SLOT}</StartBoundary>"),
    );
    let xml = read_xml(&state.join("restic-fleet-sync.xml"));
    golden("windows/sync.xml", &normalise(&xml, &env, None));

    // No change: nothing registered again.
    std::fs::remove_file(&log).unwrap();
    let (code, r) = sync(&env, &bin, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(names(&r, "unchanged").len(), 3, "{r:#}");
    assert!(calls(&log).is_empty(), "{:?}", calls(&log));

    // Change one schedule, delete one job.
    move_a_schedule_and_delete_a_job(&env, daily, hourly).await;
    let (code, r) = sync(&env, &bin, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(names(&r, "updated"), vec![stem(daily)]);
    assert_eq!(names(&r, "removed"), vec![stem(hourly)]);
    assert_eq!(
        calls(&log),
        vec![
            format!("/Delete /TN \\restic-fleet\\{} /F", stem(hourly)),
            format!(
                "/Create /TN \\restic-fleet\\{} /XML {} /F",
                stem(daily),
                state.join(format!("{}.xml.new", stem(daily))).display()
            ),
        ]
    );
    assert!(!state.join(format!("{}.xml", stem(hourly))).exists());
    let xml = read_xml(&state.join(format!("{}.xml", stem(daily))));
    assert!(xml.contains("T03:45:00Z</StartBoundary>"), "{xml}");
    assert!(!xml.contains("T02:30:00Z"));

    // Disabling the job removes its task.
    std::fs::remove_file(&log).unwrap();
    sqlx::query("UPDATE backup_jobs SET enabled = false WHERE id = $1")
        .bind(daily)
        .execute(&env.pool)
        .await
        .unwrap();
    let (_, r) = sync(&env, &bin, &[]);
    assert_eq!(names(&r, "removed"), vec![stem(daily)]);
    assert_eq!(
        calls(&log),
        vec![format!("/Delete /TN \\restic-fleet\\{} /F", stem(daily))]
    );
    assert_eq!(xml_files(&state).len(), 1, "only the sync task is left");
}

#[tokio::test]
async fn failed_registration_is_reported_and_retried() {
    let env = Env::enrolled().await;
    env.set_setting("timezone", "UTC").await;
    let bin = env.dir.path().join("failbin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("schtasks"),
        "#!/bin/sh\necho 'ERROR: Access is denied.' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("schtasks"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let src = env.make_source("src", 1);
    let job = env.add_job("j", &[&src]).await;
    add_cron(&env, job, "@daily").await;
    let (code, r) = sync(&env, &bin, &[]);
    assert_eq!(code, Some(1), "{r:#}");
    assert!(
        r["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("Access is denied"),
        "{r:#}"
    );
    assert_eq!(names(&r, "added"), Vec::<String>::new(), "{r:#}");
    // Nothing recorded as installed: the next sync tries again.
    assert!(xml_files(&env.dir.path().join("tasks")).is_empty());
}

#[tokio::test]
async fn tasks_changed_outside_restic_fleet_are_put_right() {
    let env = Env::enrolled().await;
    let (bin, log) = fake_tool(&env, "schtasks", FAKE_SCHTASKS_CHECK);
    let registry = env.dir.path().join("schtasks.registry");
    let src = env.make_source("src", 1);
    let job = env.add_job("docs", &[&src]).await;
    add_cron(&env, job, "@daily").await;
    let (code, r) = sync(&env, &bin, &[]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(names(&r, "added").len(), 2, "{r:#}");

    // Someone deletes our job's task by hand; a task of a job deleted meanwhile is still
    // registered although its state copy is gone; and a task of theirs lives in our folder.
    let gone = Uuid::new_v4();
    std::fs::write(
        &registry,
        format!(
            "\\restic-fleet\\restic-fleet-sync\n\\restic-fleet\\{}\n\\restic-fleet\\their-task\n",
            stem(gone)
        ),
    )
    .unwrap();
    std::fs::remove_file(&log).unwrap();
    let (code, r) = sync(&env, &bin, &[]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(names(&r, "added"), vec![stem(job)]);
    assert_eq!(names(&r, "removed"), vec![stem(gone)]);
    assert_eq!(
        names(&r, "unchanged"),
        vec!["restic-fleet-sync".to_string()]
    );
    let c = calls(&log);
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(
        c[0],
        format!("/Delete /TN \\restic-fleet\\{} /F", stem(gone))
    );
    assert!(c[1].starts_with(&format!("/Create /TN \\restic-fleet\\{} ", stem(job))));
    let left = std::fs::read_to_string(&registry).unwrap();
    assert!(left.contains("\\restic-fleet\\their-task"), "{left}");
}

/// `CommandLineToArgvW` (the rules for arguments not in the program-name position).
fn command_line_to_argv(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let mut cur = String::new();
        let mut quoted = false;
        while i < chars.len() && (quoted || (chars[i] != ' ' && chars[i] != '\t')) {
            if chars[i] == '\\' {
                let mut n = 0;
                while i < chars.len() && chars[i] == '\\' {
                    n += 1;
                    i += 1;
                }
                if i < chars.len() && chars[i] == '"' {
                    cur.push_str(&"\\".repeat(n / 2));
                    if n % 2 == 1 {
                        cur.push('"');
                        i += 1;
                    }
                } else {
                    cur.push_str(&"\\".repeat(n));
                }
            } else if chars[i] == '"' {
                if quoted && i + 1 < chars.len() && chars[i + 1] == '"' {
                    cur.push('"');
                    i += 2;
                    continue;
                }
                quoted = !quoted;
                i += 1;
            } else {
                cur.push(chars[i]);
                i += 1;
            }
        }
        args.push(cur);
    }
    args
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn element<'a>(xml: &'a str, name: &str) -> &'a str {
    let open = format!("<{name}>");
    let start = xml.find(&open).unwrap() + open.len();
    let end = xml[start..].find(&format!("</{name}>")).unwrap();
    &xml[start..start + end]
}

#[tokio::test]
async fn names_and_paths_cannot_inject_into_task_xml() {
    let env = Env::enrolled().await;
    let nasty = "x</Description><Exec><Command>evil.exe</Command></Exec>\" --x & 'y' \u{1}\nÚČTO";
    let src = env.make_source("src", 1);
    let job = env.add_job(nasty, &[&src]).await;
    add_cron(&env, job, "0 4 * * *").await;
    let weird_dir = env.dir.path().join("we ird \"cfg\" 100% <&> $X \\ dir\\");
    std::fs::create_dir_all(&weird_dir).unwrap();
    let weird_cfg = weird_dir.join("config.toml");
    std::fs::copy(env.config_path(), &weird_cfg).unwrap();
    let out_dir = env.dir.path().join("out");
    let out = env
        .cmd()
        .env("RESTIC_FLEET_CONFIG", &weird_cfg)
        .args(["sync", "--backend", "windows", "--dry-run", "--output-dir"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_ok(&out);
    schema_check(&xml_files(&out_dir));
    let xml = read_xml(&out_dir.join(format!("{}.xml", stem(job))));
    assert_eq!(xml.matches("<Exec>").count(), 1, "{xml}");
    assert_eq!(xml.matches("<Command>").count(), 1, "{xml}");
    let desc = xml_unescape(element(&xml, "Description"));
    assert!(
        desc.contains("x</Description><Exec>") && desc.contains("ÚČTO"),
        "{desc}"
    );
    assert!(!desc.contains('\n'));
    let args = command_line_to_argv(&xml_unescape(element(&xml, "Arguments")));
    assert_eq!(
        args,
        vec![
            "--config".to_string(),
            weird_cfg.to_string_lossy().into_owned(),
            "run".to_string(),
            job.to_string(),
            "--triggered-by".to_string(),
            "schedule".to_string(),
        ]
    );
    // Dry run: no state folder, no database writes.
    assert!(!weird_dir.join("tasks").exists());
}

fn z(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[tokio::test]
async fn a_dozen_varied_jobs_dry_run_and_the_evaluator_confirms_their_triggers() {
    let env = Env::enrolled().await;
    env.set_setting("timezone", "Europe/Prague").await;
    env.set_setting("windows_wake_to_run", "true").await;
    env.set_setting("windows_run_on_battery", "false").await;
    let src = env.make_source("src", 1);
    let crons: &[&[&str]] = &[
        &["30 2 * * *"],
        &["*/15 * * * *"],
        &["0 9-17 * * mon-fri"],
        &["0 12 1 * mon"],
        &["30 1 1,15 * *", "0 22 * * 0"],
        &["@hourly"],
        &["@monthly"],
        &["0 3 * 1,4,7,10 *"],
        &["5 4 1-7 * 1"],
        &["0 12 */3 * 1"],
        &["*/7 * * * *"],
        &["0,30 2 * * *"],
        &["15 2,14 * * sat"],
    ];
    let mut jobs = Vec::new();
    for (i, exprs) in crons.iter().enumerate() {
        let job = env
            .add_job(&format!("job {i} <{}>", exprs.join(" | ")), &[&src])
            .await;
        for e in *exprs {
            add_cron(&env, job, e).await;
        }
        jobs.push((job, *exprs));
    }
    let iv = env.add_job("every 90 minutes", &[&src]).await;
    add_interval(&env, iv, 5400).await;
    // A job that is not ours to schedule: disabled.
    let off = env.add_job("off", &[&src]).await;
    add_cron(&env, off, "@daily").await;
    sqlx::query("UPDATE backup_jobs SET enabled = false WHERE id = $1")
        .bind(off)
        .execute(&env.pool)
        .await
        .unwrap();

    let out_dir = env.dir.path().join("out");
    let out = env
        .cmd()
        .args([
            "sync",
            "--backend",
            "windows",
            "--dry-run",
            "--json",
            "--output-dir",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_ok(&out);
    let from = Utc::now();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["added"].as_array().unwrap().len(), crons.len() + 2);
    let files = xml_files(&out_dir);
    assert_eq!(files.len(), crons.len() + 2);
    schema_check(&files);
    let commands = std::fs::read_to_string(out_dir.join("schtasks-commands.txt")).unwrap();
    assert_eq!(commands.lines().count(), crons.len() + 2, "{commands}");
    assert!(
        commands
            .lines()
            .all(|l| l.starts_with("schtasks /Create /TN \\restic-fleet\\"))
    );
    assert!(
        !env.dir.path().join("tasks").exists(),
        "dry run records nothing"
    );
    assert!(!out_dir.join(format!("{}.xml", stem(off))).exists());

    let tz: chrono_tz::Tz = "Europe/Prague".parse().unwrap();
    let to = from + Duration::days(365);
    let mut cases = Vec::new();
    let mut want = std::collections::HashMap::new();
    for (job, exprs) in &jobs {
        let xml = read_xml(&out_dir.join(format!("{}.xml", stem(*job))));
        assert!(xml.contains("<WakeToRun>true</WakeToRun>"));
        assert!(xml.contains("<DisallowStartIfOnBatteries>true</DisallowStartIfOnBatteries>"));
        assert!(xml.contains("<StartWhenAvailable>true</StartWhenAvailable>"));
        assert!(xml.contains("<MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>"));
        assert!(
            !xml.contains("next occurrence only"),
            "no fallback expected: {xml}"
        );
        let mut set = BTreeSet::new();
        for e in *exprs {
            let expr = CronExpr::parse(e).unwrap();
            let mut cursor = from;
            while let Some(t) = expr.next_after(cursor, &tz) {
                if t > to {
                    break;
                }
                set.insert(z(t));
                cursor = t;
            }
        }
        cases.push(json!({"id": job.to_string(), "xml": xml, "tz": "Europe/Prague", "from": z(from), "to": z(to)}));
        want.insert(job.to_string(), set.into_iter().collect::<Vec<_>>());
    }
    let xml = read_xml(&out_dir.join(format!("{}.xml", stem(iv))));
    cases.push(json!({"id": "interval", "xml": xml, "tz": "Europe/Prague", "from": z(from), "to": z(from + Duration::days(2))}));
    let got = run_eval(&cases);
    for (id, w) in &want {
        let r = &got[id];
        assert!(r.get("error").is_none(), "{id}: {r}");
        let inst: Vec<String> = serde_json::from_value(r["instants"].clone()).unwrap();
        assert_eq!(&inst, w, "job {id}");
    }
    let inst: Vec<String> = serde_json::from_value(got["interval"]["instants"].clone()).unwrap();
    // From the slot (90 minutes after the sync, rounded up to a second) every 90 minutes.
    assert!((31..=32).contains(&inst.len()), "{inst:?}");
    let times: Vec<DateTime<Utc>> = inst.iter().map(|s| s.parse().unwrap()).collect();
    let first = times[0] - from;
    assert!(
        first > Duration::minutes(89) && first <= Duration::minutes(90) + Duration::seconds(1),
        "{inst:?}"
    );
    assert!(
        times
            .windows(2)
            .all(|w| w[1] - w[0] == Duration::minutes(90))
    );
}

fn run_eval(cases: &[Value]) -> std::collections::HashMap<String, Value> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .arg(EVAL)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for c in cases {
        writeln!(stdin, "{c}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["id"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

#[test]
fn preview_json_has_the_windows_triggers_element() {
    let out = Command::new(env!("CARGO_BIN_EXE_restic-fleet"))
        .args([
            "schedule",
            "preview",
            "--cron",
            "0 12 1 * mon",
            "--tz",
            "UTC",
            "--from",
            "2027-01-10T00:00:00Z",
            "--json",
        ])
        .output()
        .unwrap();
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let xml = v["windows_triggers_xml"].as_str().unwrap();
    assert!(
        xml.starts_with("<Triggers>") && xml.ends_with("</Triggers>"),
        "{xml}"
    );
    assert!(
        xml.contains("<ScheduleByWeek>") && xml.contains("<Monday />"),
        "{xml}"
    );
    assert!(
        xml.contains("<ScheduleByMonth>") && xml.contains("<Day>1</Day>"),
        "{xml}"
    );
    let r = run_eval(&[
        json!({"id": "p", "xml": xml, "tz": "UTC", "from": "2027-01-10T00:00:00Z", "to": "2027-02-02T00:00:00Z"}),
    ]);
    assert_eq!(
        r["p"]["instants"],
        json!([
            "2027-01-11T12:00:00Z",
            "2027-01-18T12:00:00Z",
            "2027-01-25T12:00:00Z",
            "2027-02-01T12:00:00Z"
        ])
    );
}

// The maintenance task exists on the maintenance_device only.
#[tokio::test]
async fn the_maintenance_task_is_registered_on_the_owner_only() {
    let env = Env::enrolled().await;
    env.set_setting("timezone", "UTC").await;
    env.set_setting("maintenance_schedule", "0 3 * * 0").await;
    let (bin, log) = fake_tool(&env, "schtasks", FAKE_SCHTASKS_CHECK);
    let state = env.dir.path().join("tasks");
    let (code, r) = sync(&env, &bin, &[]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(names(&r, "added"), vec!["restic-fleet-sync".to_string()]);

    env.set_setting("maintenance_device", &env.device).await;
    let (code, r) = sync(&env, &bin, &[]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(
        names(&r, "added"),
        vec!["restic-fleet-maintenance".to_string()]
    );
    let path = state.join("restic-fleet-maintenance.xml");
    schema_check(std::slice::from_ref(&path));
    let xml = read_xml(&path);
    assert!(xml.contains("<Arguments>--config "), "{xml}");
    assert!(xml.contains(" maintain</Arguments>"), "{xml}");
    golden("windows/maintenance.xml", &normalise(&xml, &env, None));

    std::fs::remove_file(&log).unwrap();
    env.set_setting("maintenance_device", "someone-else").await;
    let (code, r) = sync(&env, &bin, &[]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(
        names(&r, "removed"),
        vec!["restic-fleet-maintenance".to_string()]
    );
    assert_eq!(
        calls(&log),
        vec!["/Delete /TN \\restic-fleet\\restic-fleet-maintenance /F".to_string()]
    );
    assert!(!path.exists());
}
