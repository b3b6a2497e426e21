//! `status`: every verdict with run times set in the database, device states, exit codes,
//! and the whole path from an empty database to a green status with restic-fleet commands.

mod common;

use std::io::Write;
use std::process::{Output, Stdio};

use common::*;
use serde_json::{Value, json};
use uuid::Uuid;

fn rf(env: &Env, args: &[&str]) -> Output {
    env.cmd().args(args).stdin(Stdio::null()).output().unwrap()
}

async fn device(env: &Env, id: &str, enabled: bool, seen_minutes_ago: Option<i32>) {
    sqlx::query(
        "INSERT INTO devices (id, name, platform, enabled, last_seen) VALUES ($1, $1, 'linux', $2, \
         NOW() - make_interval(mins => $3)) \
         ON CONFLICT (id) DO UPDATE SET enabled = $2, last_seen = NOW() - make_interval(mins => $3)",
    )
    .bind(id)
    .bind(enabled)
    .bind(seen_minutes_ago)
    .execute(&env.pool)
    .await
    .unwrap();
}

async fn job(env: &Env, device: &str, name: &str, enabled: bool) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO backup_jobs (device_id, name, source_paths, enabled) \
         VALUES ($1, $2, ARRAY['/srv'], $3) RETURNING id",
    )
    .bind(device)
    .bind(name)
    .bind(enabled)
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

async fn interval(env: &Env, job: Uuid, seconds: i32) {
    sqlx::query(
        "INSERT INTO schedules (job_id, schedule_type, interval_seconds, next_run_at) \
         VALUES ($1, 'interval', $2, NOW() + interval '10 minutes')",
    )
    .bind(job)
    .bind(seconds)
    .execute(&env.pool)
    .await
    .unwrap();
}

async fn cron(env: &Env, job: Uuid, expr: &str) {
    sqlx::query(
        "INSERT INTO schedules (job_id, schedule_type, cron_expression) VALUES ($1, 'cron', $2)",
    )
    .bind(job)
    .bind(expr)
    .execute(&env.pool)
    .await
    .unwrap();
}

/// A run that started `start` minutes ago and ended `end` minutes ago (None: still running).
async fn run(
    env: &Env,
    job: Uuid,
    status: &str,
    start: i32,
    end: Option<i32>,
    message: Option<&str>,
    metadata: Value,
) {
    let device: String = sqlx::query_scalar("SELECT device_id FROM backup_jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO runs (job_id, device_id, start_time, end_time, status, error_message, metadata) \
         VALUES ($1, $2, NOW() - make_interval(mins => $3), NOW() - make_interval(mins => $4), \
         $5, $6, $7)",
    )
    .bind(job)
    .bind(device)
    .bind(start)
    .bind(end)
    .bind(status)
    .bind(message)
    .bind(metadata)
    .execute(&env.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn every_verdict_from_run_times_in_the_database() {
    let env = Env::enrolled().await;
    env.set_setting("timezone", "UTC").await;
    let d = env.device.clone();
    device(&env, &d, true, Some(1)).await;
    device(&env, "old-pc", false, Some(60)).await;
    device(&env, "new-pc", true, None).await;
    let empty = json!({});
    let mut expect: Vec<(Uuid, &str)> = Vec::new();

    let j = job(&env, &d, "ok-interval", true).await;
    interval(&env, j, 3600).await;
    run(&env, j, "success", 12, Some(10), None, empty.clone()).await;
    expect.push((j, "ok"));

    let j = job(&env, &d, "within-grace", true).await;
    interval(&env, j, 3600).await;
    run(&env, j, "success", 72, Some(70), None, empty.clone()).await;
    expect.push((j, "ok"));

    let j = job(&env, &d, "warning-message", true).await;
    interval(&env, j, 3600).await;
    run(
        &env,
        j,
        "success",
        12,
        Some(10),
        Some("warning: 1 file could not be read"),
        empty.clone(),
    )
    .await;
    expect.push((j, "warning"));

    let j = job(&env, &d, "warning-missing-path", true).await;
    run(
        &env,
        j,
        "success",
        12,
        Some(10),
        None,
        json!({"warnings": [], "missing_paths": ["/gone"]}),
    )
    .await;
    expect.push((j, "warning"));

    let j = job(&env, &d, "warning-metadata", true).await;
    run(
        &env,
        j,
        "success",
        12,
        Some(10),
        None,
        json!({"warnings": ["restic exit 3"]}),
    )
    .await;
    expect.push((j, "warning"));

    let j = job(&env, &d, "failing", true).await;
    interval(&env, j, 86400).await;
    run(&env, j, "success", 130, Some(120), None, empty.clone()).await;
    run(
        &env,
        j,
        "failed",
        35,
        Some(30),
        Some("repository not reachable"),
        empty.clone(),
    )
    .await;
    expect.push((j, "failing"));

    let j = job(&env, &d, "failing-then-running", true).await;
    run(&env, j, "failed", 35, Some(30), Some("boom"), empty.clone()).await;
    run(&env, j, "running", 1, None, None, empty.clone()).await;
    expect.push((j, "failing"));

    let j = job(&env, &d, "ok-then-running", true).await;
    interval(&env, j, 3600).await;
    run(&env, j, "success", 12, Some(10), None, empty.clone()).await;
    run(&env, j, "running", 1, None, None, empty.clone()).await;
    expect.push((j, "ok"));

    let j = job(&env, &d, "ok-then-cancelled", true).await;
    interval(&env, j, 3600).await;
    run(&env, j, "success", 12, Some(10), None, empty.clone()).await;
    run(&env, j, "cancelled", 5, Some(4), None, empty.clone()).await;
    expect.push((j, "ok"));

    let j = job(&env, &d, "overdue-interval", true).await;
    interval(&env, j, 3600).await;
    run(&env, j, "success", 185, Some(180), None, empty.clone()).await;
    expect.push((j, "overdue"));

    let j = job(&env, &d, "overdue-cron", true).await;
    cron(&env, j, "*/30 * * * *").await;
    run(&env, j, "success", 125, Some(120), None, empty.clone()).await;
    expect.push((j, "overdue"));

    let j = job(&env, &d, "overdue-cron-two-schedules", true).await;
    // Together twice a day: the period is 12 hours, not 24.
    cron(&env, j, "0 0 * * *").await;
    cron(&env, j, "0 12 * * *").await;
    run(
        &env,
        j,
        "success",
        16 * 60,
        Some(15 * 60),
        None,
        empty.clone(),
    )
    .await;
    expect.push((j, "overdue"));

    let j = job(&env, &d, "ok-cron-daily", true).await;
    cron(&env, j, "0 3 * * *").await;
    run(
        &env,
        j,
        "success",
        20 * 60,
        Some(20 * 60 - 5),
        None,
        empty.clone(),
    )
    .await;
    expect.push((j, "ok"));

    let j = job(&env, &d, "no-schedule-never-overdue", true).await;
    run(
        &env,
        j,
        "success",
        30 * 24 * 60,
        Some(30 * 24 * 60 - 5),
        None,
        empty.clone(),
    )
    .await;
    expect.push((j, "ok"));

    let j = job(&env, &d, "never-run", true).await;
    interval(&env, j, 3600).await;
    expect.push((j, "never_run"));

    let j = job(&env, &d, "never-finished", true).await;
    run(&env, j, "running", 1, None, None, empty.clone()).await;
    expect.push((j, "never_run"));

    let j = job(&env, &d, "disabled-job", false).await;
    run(&env, j, "failed", 35, Some(30), Some("boom"), empty.clone()).await;
    expect.push((j, "disabled"));

    let j = job(&env, "old-pc", "on-disabled-device", true).await;
    run(&env, j, "failed", 35, Some(30), Some("boom"), empty.clone()).await;
    expect.push((j, "disabled"));

    let out = rf(&env, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let jobs = report["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), expect.len());
    for (id, verdict) in &expect {
        let j = jobs
            .iter()
            .find(|j| j["job_id"] == id.to_string())
            .unwrap_or_else(|| panic!("job {id} missing"));
        assert_eq!(
            j["verdict"], *verdict,
            "job {} ({}): {}",
            j["job_name"], j["reason"], j
        );
        for key in [
            "job_name",
            "device_id",
            "reason",
            "last_run_status",
            "last_success_at",
            "last_success_age_seconds",
            "next_run_at",
            "expected_period_seconds",
            "running",
        ] {
            assert!(j.get(key).is_some(), "status job lacks {key}");
        }
    }
    let by_name = |n: &str| jobs.iter().find(|j| j["job_name"] == n).unwrap().clone();
    assert_eq!(by_name("overdue-cron")["expected_period_seconds"], 1800);
    assert_eq!(
        by_name("overdue-cron-two-schedules")["expected_period_seconds"],
        43200
    );
    assert_eq!(by_name("ok-then-running")["running"], true);
    assert_eq!(by_name("ok-then-running")["last_run_status"], "running");
    assert!(by_name("ok-interval")["next_run_at"].is_string());
    assert_eq!(
        by_name("no-schedule-never-overdue")["expected_period_seconds"],
        Value::Null
    );
    assert!(
        by_name("failing")["reason"]
            .as_str()
            .unwrap()
            .contains("repository not reachable")
    );

    let state = |id: &str| {
        report["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device_id"] == id)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state(&d), "online");
    assert_eq!(state("old-pc"), "offline");
    assert_eq!(state("new-pc"), "never_seen");

    // The human table: no colour without a terminal, 100 columns at most.
    let out = rf(&env, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(!text.contains('\x1b'), "{text}");
    assert!(
        text.contains("failing") && text.contains("overdue") && text.contains("never_seen"),
        "{text}"
    );
    println!("{text}");
    let table_lines: Vec<&str> = text.lines().take_while(|l| !l.contains(": ")).collect();
    assert!(
        table_lines.iter().all(|l| l.chars().count() <= 100),
        "{text}"
    );

    // A device whose jobs are all fine: exit 0.
    device(&env, "good-pc", true, Some(1)).await;
    let j = job(&env, "good-pc", "fine", true).await;
    interval(&env, j, 3600).await;
    run(&env, j, "success", 12, Some(10), None, empty.clone()).await;
    let out = rf(&env, &["status", "--device", "good-pc", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(report["ok"], true);

    let out = rf(&env, &["status", "--device", "ghost"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no device"), "{}", stderr(&out));
}

#[tokio::test]
async fn empty_database_to_green_status_with_restic_fleet_commands_alone() {
    let env = Env::empty().await;
    let url = env.url.clone();
    let ok = |args: &[&str]| {
        let out = rf(&env, args);
        assert_ok(&out);
        out
    };
    ok(&["db", "migrate", "--database-url", &url]);
    ok(&[
        "device",
        "add",
        "test-device",
        "--name",
        "Test box",
        "--platform",
        "linux",
        "--database-url",
        &url,
    ]);
    ok(&["init", "--database-url", &url, "--device-id", "test-device"]);

    // The repository itself is made by restic; everything else is restic-fleet.
    let out = env.restic(&["init", "--quiet"]);
    assert_ok(&out);
    ok(&[
        "settings",
        "set",
        "repository_url",
        env.repo().to_str().unwrap(),
    ]);
    let mut child = env
        .cmd()
        .args(["settings", "set", "repository_password", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    assert!(!stdout(&out).contains(PASSWORD));
    let cache = env.dir.path().join("cache");
    ok(&[
        "settings",
        "set",
        "repository_cache_dir",
        cache.to_str().unwrap(),
    ]);

    let src = env.make_source("home", 3);
    let out = ok(&[
        "job",
        "add",
        "--device",
        "test-device",
        "--name",
        "home",
        "--path",
        src.to_str().unwrap(),
    ]);
    let job = stdout(&out).trim().to_string();
    ok(&["schedule", "add", &job, "--interval", "3600"]);

    let out = rf(&env, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["jobs"][0]["verdict"], "never_run");

    ok(&["run", &job]);

    let out = rf(&env, &["status", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["jobs"][0]["job_id"], job);
    assert_eq!(report["jobs"][0]["verdict"], "ok");
    assert_eq!(report["ok"], true);
    let out = rf(&env, &["status"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("everything is backed up"),
        "{}",
        stdout(&out)
    );

    // The run is there, with its restic output.
    let runs: Value = serde_json::from_slice(&ok(&["runs", "list", "--json"]).stdout).unwrap();
    assert_eq!(runs[0]["status"], "success");
    let id = runs[0]["id"].to_string();
    let show = ok(&["runs", "show", &id]);
    assert!(stdout(&show).contains("restic output"));
    assert!(!stdout(&show).contains(PASSWORD));
}
