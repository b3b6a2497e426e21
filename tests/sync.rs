//! `sync` with the systemd backend: rendered units (golden files, `systemd-analyze verify`),
//! a recording fake `systemctl`, reconciliation, injection, missed and stale runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;
use uuid::Uuid;

fn sync(env: &Env, bin: &Path, unit_dir: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let dir = unit_dir.to_str().unwrap();
    let mut args = vec!["--unit-dir", dir];
    args.extend_from_slice(extra);
    sync_json(env, bin, &args)
}

/// `systemd-analyze verify` prints nothing for a clean unit (it exits 0 even with warnings).
fn verify(dir: &Path) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("restic-fleet-")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .args(&files)
        .output()
        .expect("systemd-analyze");
    let err = stderr(&out);
    assert!(
        out.status.success() && err.trim().is_empty() && stdout(&out).trim().is_empty(),
        "systemd-analyze verify:\n{err}"
    );
}

fn normalise(text: &str, env: &Env, job: Uuid) -> String {
    text.replace(env!("CARGO_BIN_EXE_restic-fleet"), "{BINARY}")
        .replace(env.config_path().to_str().unwrap(), "{CONFIG}")
        .replace(env.state_dir().to_str().unwrap(), "{STATE}")
        .replace(&job.to_string(), "{JOB}")
}

/// Every `.service` file sync wrote into `dir`, by name.
fn services(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "service"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn units_carry_the_unit_dir_and_the_state_dir_that_sync_was_given() {
    let env = Env::enrolled().await;
    env.set_setting("timezone", "UTC").await;
    env.set_setting("maintenance_device", &env.device).await;
    let (bin, log) = fake_tool(&env, "systemctl", "");
    // Characters systemd would otherwise expand or split on, in both directories.
    let units = env.dir.path().join("unit dir 100%");
    let state = env.dir.path().join("state $HOME 50% \"q\" \\x");
    let src = env.make_source("src", 1);
    let job = env.add_job("daily", &[&src]).await;
    add_cron(&env, job, "30 2 * * *").await;
    let sync_by_hand = || {
        env.cmd()
            .env("PATH", path_with(&bin))
            .env("RESTIC_FLEET_STATE_DIR", &state)
            .args(["sync", "--json", "--unit-dir", units.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = sync_by_hand();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    verify(&units);
    // The hand run's state directory is in every unit, escaped for systemd: `%` doubled, `"`
    // and `\` escaped, `$` kept (Environment= expands no variables).
    let assignment = format!(
        "Environment=\"RESTIC_FLEET_STATE_DIR={}/state $HOME 50%% \\\"q\\\" \\\\x\"",
        env.dir.path().display()
    );
    let services = services(&units);
    let files: Vec<&str> = services.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        files,
        [
            "restic-fleet-catchup@.service".to_string(),
            format!("{}.service", stem(job)),
            "restic-fleet-maintenance.service".to_string(),
            "restic-fleet-sync.service".to_string(),
        ]
    );
    for (name, text) in &services {
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("Environment="))
                .collect::<Vec<_>>(),
            [assignment.as_str()],
            "{name}:\n{text}"
        );
    }
    // The sync unit syncs into the same unit directory (`%` doubled for systemd).
    let sync_service = &services[3].1;
    let unit_arg = format!(
        "\"sync\" \"--unit-dir\" \"{}/unit dir 100%%\"",
        env.dir.path().display()
    );
    assert!(sync_service.contains(&unit_arg), "{sync_service}");
    // What the sync unit runs (the same arguments and state directory) changes nothing.
    let before = calls(&log).len();
    let out = sync_by_hand();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        names(&r, "added").is_empty() && names(&r, "updated").is_empty(),
        "{r:#}"
    );
    assert_eq!(calls(&log).len(), before);
}

#[tokio::test]
async fn sync_installs_changes_and_removes_exactly_what_the_database_says() {
    let env = Env::enrolled().await;
    env.set_setting("timezone", "UTC").await;
    env.set_setting("schedule_jitter_seconds", "120").await;
    let (bin, log) = fake_tool(&env, "systemctl", "");
    let units = env.dir.path().join("units");
    let src = env.make_source("src", 1);
    let daily = env.add_job("daily", &[&src]).await;
    add_cron(&env, daily, "30 2 * * *").await;
    add_cron(&env, daily, "0 12 * * 1-5").await;
    let hourly = env.add_job("interval", &[&src]).await;
    add_interval(&env, hourly, 3600).await;
    let unscheduled = env.add_job("manual only", &[&src]).await;
    let disabled = env.add_job("disabled", &[&src]).await;
    add_cron(&env, disabled, "0 1 * * *").await;
    sqlx::query("UPDATE backup_jobs SET enabled = false WHERE id = $1")
        .bind(disabled)
        .execute(&env.pool)
        .await
        .unwrap();
    // Files that are not ours: no marker, or no prefix.
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(
        units.join(format!("{}.timer", stem(Uuid::new_v4()))),
        "[Timer]\nOnCalendar=daily\n",
    )
    .unwrap();
    let marker = "# Managed by restic-fleet (restic-fleet sync regenerates this file; edits are overwritten)";
    std::fs::write(units.join("backup.timer"), format!("{marker}\n[Timer]\n")).unwrap();

    // First sync: the two scheduled jobs and the sync timer are added.
    let (code, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(names(&r, "added"), {
        let mut v = vec![stem(daily), stem(hourly), "restic-fleet-sync".to_string()];
        v.sort();
        v
    });
    assert!(names(&r, "removed").is_empty() && names(&r, "updated").is_empty());
    assert!(!units.join(format!("{}.timer", stem(unscheduled))).exists());
    assert!(!units.join(format!("{}.timer", stem(disabled))).exists());
    let c = calls(&log);
    assert_eq!(c[0], "daemon-reload", "{c:?}");
    let mut enabled: Vec<&String> = c[1..].iter().collect();
    enabled.sort();
    let mut want = [
        format!("enable --now {}.timer", stem(daily)),
        format!("enable --now {}.timer", stem(hourly)),
        "enable --now restic-fleet-sync.timer".to_string(),
    ];
    want.sort();
    assert_eq!(enabled, want.iter().collect::<Vec<_>>());
    verify(&units);
    let timer = std::fs::read_to_string(units.join(format!("{}.timer", stem(daily)))).unwrap();
    golden("daily.timer", &normalise(&timer, &env, daily));
    let service = std::fs::read_to_string(units.join(format!("{}.service", stem(daily)))).unwrap();
    golden("daily.service", &normalise(&service, &env, daily));
    // The catch-up template unit comes with the sync units.
    let catch_up = std::fs::read_to_string(units.join("restic-fleet-catchup@.service")).unwrap();
    golden("catchup@.service", &normalise(&catch_up, &env, daily));
    let interval_timer =
        std::fs::read_to_string(units.join(format!("{}.timer", stem(hourly)))).unwrap();
    // The interval timer also fires at the slot the database holds, to the second (rounded up).
    let slot = whole_second_slot(&env, hourly).await;
    let slot_line = format!("OnCalendar={} UTC", slot.format("%Y-%m-%d %H:%M:%S"));
    assert!(interval_timer.contains(&slot_line), "{interval_timer}");
    golden(
        "interval.timer",
        &normalise(&interval_timer, &env, hourly).replace(&slot_line, "OnCalendar={SLOT} UTC"),
    );
    let sync_timer = std::fs::read_to_string(units.join("restic-fleet-sync.timer")).unwrap();
    assert!(sync_timer.contains("OnUnitActiveSec=300s"), "{sync_timer}");
    // next_run_at stored for every enabled schedule.
    let nulls: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM schedules s JOIN backup_jobs j ON j.id = s.job_id WHERE j.enabled AND s.next_run_at IS NULL",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(nulls, 0);

    // Second sync, nothing changed: no file rewritten, no systemctl call.
    let mtime = std::fs::metadata(units.join(format!("{}.timer", stem(daily))))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::remove_file(&log).unwrap();
    let (code, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(names(&r, "unchanged").len(), 3, "{r:#}");
    assert!(
        names(&r, "added").is_empty()
            && names(&r, "updated").is_empty()
            && names(&r, "removed").is_empty()
    );
    assert!(calls(&log).is_empty(), "{:?}", calls(&log));
    assert_eq!(
        std::fs::metadata(units.join(format!("{}.timer", stem(daily))))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );

    // Change one schedule and delete one job: exactly those changes.
    move_a_schedule_and_delete_a_job(&env, daily, hourly).await;
    let (code, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(names(&r, "updated"), vec![stem(daily)]);
    assert_eq!(names(&r, "removed"), vec![stem(hourly)]);
    assert_eq!(
        names(&r, "unchanged"),
        vec!["restic-fleet-sync".to_string()]
    );
    assert_eq!(
        calls(&log),
        vec![
            format!("disable --now {}.timer", stem(hourly)),
            "daemon-reload".to_string(),
            format!("restart {}.timer", stem(daily)),
        ]
    );
    assert!(!units.join(format!("{}.timer", stem(hourly))).exists());
    assert!(!units.join(format!("{}.service", stem(hourly))).exists());
    let timer = std::fs::read_to_string(units.join(format!("{}.timer", stem(daily)))).unwrap();
    assert!(timer.contains("OnCalendar=*-*-* 03:45:00 UTC"), "{timer}");
    assert!(!timer.contains("02:30"));

    // Disabling the job, or moving it to another device, removes its units.
    std::fs::remove_file(&log).unwrap();
    sqlx::query("INSERT INTO devices (id, name, platform) VALUES ('other', 'other', 'linux')")
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE backup_jobs SET device_id = 'other' WHERE id = $1")
        .bind(daily)
        .execute(&env.pool)
        .await
        .unwrap();
    let (_, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(names(&r, "removed"), vec![stem(daily)]);
    assert_eq!(
        calls(&log),
        vec![
            format!("disable --now {}.timer", stem(daily)),
            "daemon-reload".to_string()
        ]
    );

    // Foreign files were never touched.
    assert_eq!(
        std::fs::read_dir(&units).unwrap().count(),
        5,
        "sync unit pair + catch-up template + two foreign files"
    );
    assert!(units.join("backup.timer").exists());

    // Heartbeat.
    let (seen, meta): (Option<chrono::DateTime<chrono::Utc>>, Value) =
        sqlx::query_as("SELECT last_seen, metadata FROM devices WHERE id = $1")
            .bind(&env.device)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(chrono::Utc::now() - seen.unwrap() < chrono::Duration::minutes(5));
    assert!(
        meta["restic_version"].as_str().unwrap().contains("restic"),
        "{meta}"
    );
    assert_eq!(meta["client_version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn invalid_schedule_is_reported_and_the_rest_completes() {
    let env = Env::enrolled().await;
    let (bin, _log) = fake_tool(&env, "systemctl", "");
    let units = env.dir.path().join("units");
    let src = env.make_source("src", 1);
    let good = env.add_job("good", &[&src]).await;
    add_cron(&env, good, "@daily").await;
    let bad = env.add_job("bad job", &[&src]).await;
    add_cron(&env, bad, "0 25 * * *").await;
    let (code, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(code, Some(1), "exit code says something failed");
    let failed = r["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    let err = failed[0]["error"].as_str().unwrap();
    assert!(
        err.contains("bad job") && err.contains("0 25 * * *") && err.contains("hour"),
        "{err}"
    );
    assert!(units.join(format!("{}.timer", stem(good))).exists());
    assert!(!units.join(format!("{}.timer", stem(bad))).exists());
}

// A spooled record the database does not take stays in the spool and fails the sync (exit 1),
// as README's exit codes say; the rest of the sync completes.
#[tokio::test]
async fn a_spooled_record_that_is_not_taken_fails_the_sync() {
    let env = Env::enrolled().await;
    let (bin, _log) = fake_tool(&env, "systemctl", "");
    let units = env.dir.path().join("units");
    let spool = env.state_dir().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let file = spool.join("20260101T000000Z-bad.json");
    std::fs::write(&file, "not a run record").unwrap();
    let (code, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(code, Some(1), "{r:#}");
    let failed = r["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{r:#}");
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("stays in the spool"),
        "{r:#}"
    );
    assert!(file.exists(), "the record is kept");
    assert!(units.join("restic-fleet-sync.timer").exists());
}

#[tokio::test]
async fn a_hand_written_unit_with_our_name_is_never_overwritten() {
    let env = Env::enrolled().await;
    let (bin, log) = fake_tool(&env, "systemctl", "");
    let units = env.dir.path().join("units");
    let src = env.make_source("src", 1);
    let job = env.add_job("docs", &[&src]).await;
    add_cron(&env, job, "@daily").await;
    std::fs::create_dir_all(&units).unwrap();
    let theirs = units.join(format!("{}.timer", stem(job)));
    let mine = "[Timer]\nOnCalendar=weekly\n";
    std::fs::write(&theirs, mine).unwrap();

    let (code, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(code, Some(1), "{r:#}");
    let failed = r["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{r:#}");
    let err = failed[0]["error"].as_str().unwrap();
    assert!(err.contains("not written by restic-fleet"), "{err}");
    assert_eq!(names(&r, "added"), vec!["restic-fleet-sync".to_string()]);
    assert_eq!(std::fs::read_to_string(&theirs).unwrap(), mine);
    assert!(!units.join(format!("{}.service", stem(job))).exists());
    let c = calls(&log);
    assert!(
        !c.iter().any(|l| l.contains(&stem(job))),
        "systemctl was told about the foreign unit: {c:?}"
    );
    assert!(
        c.contains(&"enable --now restic-fleet-sync.timer".to_string()),
        "{c:?}"
    );

    // Moved away, the next sync installs ours.
    std::fs::remove_file(&theirs).unwrap();
    let (code, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(names(&r, "added"), vec![stem(job)]);
}

#[tokio::test]
async fn names_and_paths_cannot_inject_into_units() {
    let env = Env::enrolled().await;
    let (bin, _log) = fake_tool(&env, "systemctl", "");
    let units = env.dir.path().join("units");
    let nasty =
        "x\"; rm -rf / %n $HOME \\ \n[Service]\nExecStartPre=/bin/evil ÚČTO \u{202e}fdp.exe";
    let src = env.make_source("src", 1);
    let job = env.add_job(nasty, &[&src]).await;
    add_cron(&env, job, "0 4 * * *").await;
    // A config path with spaces, quotes, %, $ and a backslash.
    let weird_dir = env.dir.path().join("we ird \"cfg\" 100% $X \\ dir");
    std::fs::create_dir_all(&weird_dir).unwrap();
    let weird_cfg = weird_dir.join("config.toml");
    std::fs::copy(env.config_path(), &weird_cfg).unwrap();
    let out = env
        .cmd()
        .env("PATH", path_with(&bin))
        .env("RESTIC_FLEET_CONFIG", &weird_cfg)
        .args(["sync", "--unit-dir"])
        .arg(&units)
        .output()
        .unwrap();
    assert_ok(&out);
    verify(&units);
    for f in std::fs::read_dir(&units).unwrap().flatten() {
        let text = std::fs::read_to_string(f.path()).unwrap();
        assert!(
            !text.lines().any(|l| l.starts_with("ExecStartPre")),
            "{text}"
        );
        assert_eq!(
            text.lines().filter(|l| *l == "[Service]").count(),
            usize::from(f.path().extension().unwrap() == "service"),
            "{text}"
        );
    }
    let service = std::fs::read_to_string(units.join(format!("{}.service", stem(job)))).unwrap();
    let exec = service
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .unwrap();
    assert!(exec.contains("100%% $$X \\\\ dir"), "{exec}");
    assert!(exec.contains("\\\"cfg\\\""), "{exec}");
    let desc = service
        .lines()
        .find(|l| l.starts_with("Description="))
        .unwrap();
    assert!(
        desc.contains("%%n $HOME /") && desc.contains("ÚČTO"),
        "{desc}"
    );
    // A bidi override would show the name reversed in `systemctl status`.
    assert!(
        desc.contains("U+202Efdp.exe") && !desc.contains('\u{202e}'),
        "{desc}"
    );
}

#[tokio::test]
async fn without_systemctl_files_are_written_and_a_warning_says_timers_are_inactive() {
    let env = Env::enrolled().await;
    let units = env.dir.path().join("units");
    let src = env.make_source("src", 1);
    let job = env.add_job("j", &[&src]).await;
    add_cron(&env, job, "@hourly").await;
    let empty = env.dir.path().join("emptybin");
    std::fs::create_dir_all(&empty).unwrap();
    let out = env
        .cmd()
        .env("PATH", &empty)
        .args(["sync", "--json", "--unit-dir"])
        .arg(&units)
        .output()
        .unwrap();
    assert_ok(&out);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let w = r["warnings"].as_array().unwrap();
    assert!(
        w.iter()
            .any(|w| w.as_str().unwrap().contains("timers are NOT active")),
        "{r:#}"
    );
    assert!(units.join(format!("{}.timer", stem(job))).exists());
}

#[tokio::test]
async fn a_sync_that_changes_nothing_leaves_the_local_copy_alone() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::enrolled().await;
    let (bin, _) = fake_tool(&env, "systemctl", "");
    let units = env.dir.path().join("units");
    let src = env.make_source("src", 1);
    let job = env.add_job("j", &[&src]).await;
    add_cron(&env, job, "@hourly").await;
    let copy = env.state_dir().join("local-copy.json");
    let file = || std::fs::metadata(&copy).unwrap();
    assert_eq!(sync(&env, &bin, &units, &[]).0, Some(0));
    let (first, bytes) = (file(), std::fs::read(&copy).unwrap());
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(sync(&env, &bin, &units, &[]).0, Some(0));
    // Same file, same bytes: not rewritten; only its time moved on (the copy's age).
    assert_eq!(file().ino(), first.ino());
    assert_eq!(std::fs::read(&copy).unwrap(), bytes);
    assert!(file().modified().unwrap() > first.modified().unwrap());
    // A change is written.
    env.set_setting("hook_timeout_seconds", "77").await;
    assert_eq!(sync(&env, &bin, &units, &[]).0, Some(0));
    assert_ne!(file().ino(), first.ino());
    assert!(std::fs::read_to_string(&copy).unwrap().contains("77"));
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let env = Env::enrolled().await;
    let (bin, log) = fake_tool(&env, "systemctl", "");
    let units = env.dir.path().join("units");
    let src = env.make_source("src", 1);
    let job = env.add_job("j", &[&src]).await;
    add_cron(&env, job, "@hourly").await;
    let (code, r) = sync(&env, &bin, &units, &["--dry-run"]);
    assert_eq!(code, Some(0));
    assert_eq!(names(&r, "added").len(), 2);
    assert!(!units.exists() || std::fs::read_dir(&units).unwrap().count() == 0);
    assert!(calls(&log).is_empty());
    let next: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT next_run_at FROM schedules WHERE job_id = $1")
            .bind(job)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(next.is_none());
    let seen: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_seen FROM devices WHERE id = $1")
            .bind(&env.device)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(seen.is_none());
}

#[tokio::test]
async fn missed_slot_gets_exactly_one_catch_up_and_the_persistent_timer_then_skips() {
    let env = Env::with_repo().await;
    let units = env.dir.path().join("units");
    let (bin, log) = fake_systemd(&env, &units, &env.dir.path().join("var-cache"));
    let src = env.make_source("src", 2);
    let job = env.add_job("laptop home", &[&src]).await;
    let s1 = add_cron(&env, job, "0 9 * * *").await;
    let s2 = add_cron(&env, job, "0 21 * * *").await;
    let quiet = env.add_job("quiet", &[&src]).await;
    let s3 = add_cron(&env, quiet, "0 9 * * *").await;
    // Both slots of `job` passed while the machine slept; `quiet`'s slot is within the grace.
    sqlx::query("UPDATE schedules SET next_run_at = NOW() - INTERVAL '3 hours' WHERE id = $1")
        .bind(s1)
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE schedules SET next_run_at = NOW() - INTERVAL '2 hours' WHERE id = $1")
        .bind(s2)
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE schedules SET next_run_at = NOW() - INTERVAL '5 minutes' WHERE id = $1")
        .bind(s3)
        .execute(&env.pool)
        .await
        .unwrap();

    // --no-catch-up reports it and starts nothing.
    let (_, r) = sync(&env, &bin, &units, &["--no-catch-up"]);
    assert_eq!(r["missed"].as_array().unwrap().len(), 1, "{r:#}");
    assert_eq!(r["missed"][0]["catch_up"], "not started (--no-catch-up)");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);

    let (code, r) = sync(&env, &bin, &units, &["--wait"]);
    assert_eq!(code, Some(0), "{r:#}");
    let missed = r["missed"].as_array().unwrap();
    assert_eq!(missed.len(), 1, "one catch-up per job: {r:#}");
    assert_eq!(missed[0]["job_id"], job.to_string());
    assert_eq!(missed[0]["exit_code"], 0);
    // The catch-up went through systemd as an instance of the catch-up template unit.
    let unit = format!("restic-fleet-catchup@{job}.service");
    assert!(
        calls(&log).contains(&format!("start {unit}")),
        "{:?}",
        calls(&log)
    );
    assert!(
        r["commands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().ends_with(&unit))
    );
    let rows: Vec<(Uuid, String, String)> =
        sqlx::query_as("SELECT job_id, triggered_by, status FROM runs ORDER BY id")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![(job, "missed".to_string(), "success".to_string())]
    );

    // systemd's Persistent= catch-up fires the timer after boot: the slot is covered, no 2nd
    // backup.
    let out = env
        .cmd()
        .args(["run", &job.to_string(), "--triggered-by", "schedule"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    // And the next sync sees nothing missed.
    let (_, r) = sync(&env, &bin, &units, &[]);
    assert!(r["missed"].as_array().unwrap().is_empty(), "{r:#}");
    let snaps = env.restic(&["snapshots", "--json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&snaps.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn an_interval_timer_finds_its_slot_due_and_sync_does_not_move_it() {
    let env = Env::with_repo().await;
    let (bin, _log) = fake_tool(&env, "systemctl", "");
    let units = env.dir.path().join("units");
    let src = env.make_source("src", 1);
    let job = env.add_job("hourly", &[&src]).await;
    let id = add_interval(&env, job, 3600).await;
    let next_run = || async {
        sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
            "SELECT next_run_at FROM schedules WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&env.pool)
        .await
        .unwrap()
        .unwrap()
    };
    let scheduled_run = || {
        env.cmd()
            .args(["run", &job.to_string(), "--triggered-by", "schedule"])
            .output()
            .unwrap()
    };

    // The first sync gives the never-run schedule its first slot; later syncs keep it, so the
    // timer (OnBootSec=/OnUnitActiveSec=) finds it due instead of always an hour ahead.
    let (code, r) = sync(&env, &bin, &units, &["--no-catch-up"]);
    assert_eq!(code, Some(0), "{r:#}");
    let first = next_run().await;
    let ahead = (first - chrono::Utc::now()).num_seconds();
    assert!((3500..=3600).contains(&ahead), "{ahead}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    sync(&env, &bin, &units, &["--no-catch-up"]);
    assert_eq!(next_run().await, first, "a second sync moved the slot");

    // The timer's rhythm is its own (manual and catch-up runs do not reset it): fired 20
    // minutes before the stored slot, less than half the interval, the slot is due.
    sqlx::query("UPDATE schedules SET next_run_at = NOW() + INTERVAL '20 minutes' WHERE id = $1")
        .bind(id)
        .execute(&env.pool)
        .await
        .unwrap();
    let out = scheduled_run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Right after it, the next slot is an hour away: a second timer run is skipped.
    let out = scheduled_run();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // A skip is not an error, and it claims nothing about other runs.
    assert!(
        stderr(&out).starts_with("skipped: not due, next run at "),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("error:"), "{}", stderr(&out));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn sync_closes_stale_runs() {
    let env = Env::enrolled().await;
    let (bin, _log) = fake_tool(&env, "systemctl", "");
    let units = env.dir.path().join("units");
    let src = env.make_source("src", 1);
    let job = env.add_job("j", &[&src]).await;
    let id: i32 = sqlx::query_scalar(
        "INSERT INTO runs (job_id, device_id, start_time, status, triggered_by) VALUES ($1, $2, NOW() - INTERVAL '1 day', 'running', 'schedule') RETURNING id",
    )
    .bind(job)
    .bind(&env.device)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    let (_, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(r["stale_runs_closed"], serde_json::json!([id]));
    let (status, msg): (String, Option<String>) =
        sqlx::query_as("SELECT status, error_message FROM runs WHERE id = $1")
            .bind(id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(msg.unwrap().contains("ended without recording a result"));
}

#[tokio::test]
async fn a_disabled_device_keeps_only_the_sync_timer_and_refuses_runs() {
    let env = Env::enrolled().await;
    let (bin, _log) = fake_tool(&env, "systemctl", "");
    let units = env.dir.path().join("units");
    let src = env.make_source("src", 1);
    let job = env.add_job("j", &[&src]).await;
    add_cron(&env, job, "@daily").await;
    let (_, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(names(&r, "added").len(), 2);
    sqlx::query("UPDATE devices SET enabled = false WHERE id = $1")
        .bind(&env.device)
        .execute(&env.pool)
        .await
        .unwrap();
    let (code, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(names(&r, "removed"), vec![stem(job)]);
    assert_eq!(
        names(&r, "unchanged"),
        vec!["restic-fleet-sync".to_string()]
    );
    assert!(
        r["warnings"][0].as_str().unwrap().contains("is disabled"),
        "{r:#}"
    );
    let out = env.cmd().args(["run", &job.to_string()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is disabled"), "{}", stderr(&out));
}

// The maintenance timer exists on the maintenance_device only.
#[tokio::test]
async fn the_maintenance_timer_is_installed_on_the_owner_only() {
    let env = Env::enrolled().await;
    env.set_setting("timezone", "UTC").await;
    env.set_setting("maintenance_schedule", "0 3 * * 0").await;
    sqlx::query("INSERT INTO devices (id, name, platform) VALUES ('other', 'other', 'linux')")
        .execute(&env.pool)
        .await
        .unwrap();
    let (bin, log) = fake_tool(&env, "systemctl", "");
    let units = env.dir.path().join("units");
    let maintenance = "restic-fleet-maintenance".to_string();

    // No owner: no maintenance timer.
    let (code, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(names(&r, "added"), vec!["restic-fleet-sync".to_string()]);

    // This device is the owner: added, verified, golden.
    env.set_setting("maintenance_device", &env.device).await;
    let (code, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(names(&r, "added"), vec![maintenance.clone()]);
    assert!(calls(&log).contains(&"enable --now restic-fleet-maintenance.timer".to_string()));
    verify(&units);
    let timer = std::fs::read_to_string(units.join("restic-fleet-maintenance.timer")).unwrap();
    golden("maintenance.timer", &normalise(&timer, &env, Uuid::nil()));
    let service = std::fs::read_to_string(units.join("restic-fleet-maintenance.service")).unwrap();
    golden(
        "maintenance.service",
        &normalise(&service, &env, Uuid::nil()),
    );
    // systemd's own calendar engine: the timer fires on Sundays at 03:00 UTC.
    let line = timer
        .lines()
        .find_map(|l| l.strip_prefix("OnCalendar="))
        .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["calendar", "--iterations=3", line])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let text = stdout(&out);
    let fires: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Next elapse") || l.contains("Iter."))
        .collect();
    assert_eq!(fires.len(), 3, "{text}");
    assert!(
        fires
            .iter()
            .all(|l| l.contains("Sun") && l.contains("03:00:00")),
        "{text}"
    );

    // Another device syncing sees no maintenance timer, even with a per-device row naming
    // itself: only the global maintenance_device counts.
    sqlx::query(
        "INSERT INTO settings (device_id, key, value) VALUES ('other', 'maintenance_device', 'other')",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    let other_units = env.dir.path().join("other-units");
    let out = env
        .cmd()
        .env("PATH", path_with(&bin))
        .env("RESTIC_FLEET_DEVICE_ID", "other")
        .args([
            "sync",
            "--json",
            "--unit-dir",
            other_units.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(!other_units.join("restic-fleet-maintenance.timer").exists());
    assert!(other_units.join("restic-fleet-sync.timer").exists());

    // The owner changes: the old owner's timer is removed.
    env.set_setting("maintenance_device", "other").await;
    let (code, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(names(&r, "removed"), vec![maintenance.clone()]);
    assert!(!units.join("restic-fleet-maintenance.timer").exists());

    // A broken schedule on the owner (not cron, or a date that never comes, stored by SQL) is
    // one failed item; the rest of sync completes and the installed timer stays.
    env.set_setting("maintenance_device", &env.device).await;
    let (code, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(names(&r, "added"), vec![maintenance]);
    let installed = std::fs::read_to_string(units.join("restic-fleet-maintenance.timer")).unwrap();
    for broken in ["not cron", "0 3 30 2 *"] {
        sqlx::query("UPDATE settings SET value = $1 WHERE key = 'maintenance_schedule'")
            .bind(broken)
            .execute(&env.pool)
            .await
            .unwrap();
        let (code, r) = sync(&env, &bin, &units, &[]);
        assert_eq!(code, Some(1), "{r:#}");
        assert!(
            r["failed"][0]["error"]
                .as_str()
                .unwrap()
                .contains("maintenance_schedule"),
            "{r:#}"
        );
        assert!(names(&r, "removed").is_empty(), "{broken}: {r:#}");
        assert_eq!(
            std::fs::read_to_string(units.join("restic-fleet-maintenance.timer")).unwrap(),
            installed,
            "{broken}"
        );
        assert!(units.join("restic-fleet-sync.timer").exists());
    }
    // `settings set` refuses a schedule that can never fire.
    let out = env
        .cmd()
        .args(["settings", "set", "maintenance_schedule", "0 3 31 4 *"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("never fire"), "{}", stderr(&out));
}

/// The heartbeat's restic version is asked of restic once, and again only when the binary
/// changes (starting restic was 40% of a no-op sync).
#[tokio::test]
async fn restic_is_asked_its_version_once_and_again_after_an_upgrade() {
    let env = Env::enrolled().await;
    let (bin, _) = fake_tool(&env, "systemctl", "");
    let units = env.dir.path().join("units");
    let asked = env.dir.path().join("restic-asked.log");
    let write_restic = |version: &str| {
        let script = bin.join("restic");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\necho 'restic {version} compiled with a test'\n",
                asked.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let version_stored = || async {
        let meta: Value = sqlx::query_scalar("SELECT metadata FROM devices WHERE id = $1")
            .bind(&env.device)
            .fetch_one(&env.pool)
            .await
            .unwrap();
        meta["restic_version"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    write_restic("0.16.4");
    for _ in 0..3 {
        let (code, r) = sync(&env, &bin, &units, &[]);
        assert_eq!(code, Some(0), "{r}");
    }
    assert_eq!(calls(&asked), vec!["version"], "asked once for three syncs");
    assert_eq!(version_stored().await, "restic 0.16.4 compiled with a test");

    // An upgrade (another size) is noticed at the next sync.
    write_restic("0.17.10");
    let (code, r) = sync(&env, &bin, &units, &[]);
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(calls(&asked), vec!["version", "version"]);
    assert_eq!(
        version_stored().await,
        "restic 0.17.10 compiled with a test"
    );

    // A lost cache file only costs one more question.
    std::fs::remove_file(env.state_dir().join("restic-version")).unwrap();
    sync(&env, &bin, &units, &[]);
    sync(&env, &bin, &units, &[]);
    assert_eq!(calls(&asked).len(), 3);
}
