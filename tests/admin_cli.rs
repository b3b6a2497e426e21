//! Fleet-management commands (device, job, schedule, settings, runs, cleanup, completions, man)
//! against a real PostgreSQL, including every validation error: a clear sentence, exit code 2,
//! and the database unchanged.

mod common;

use std::process::{Output, Stdio};

use common::*;
use serde_json::Value;

fn rf(env: &Env, args: &[&str]) -> Output {
    env.cmd().args(args).stdin(Stdio::null()).output().unwrap()
}

fn json(out: &Output) -> Value {
    assert_ok(out);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", stdout(out));
    })
}

/// Every row of every table, as text: equal before and after means "database unchanged".
async fn snapshot(env: &Env) -> String {
    let mut s = String::new();
    for (table, order) in [
        ("devices", "id"),
        ("backup_jobs", "id"),
        ("schedules", "id"),
        ("runs", "id"),
        ("settings", "id"),
    ] {
        let rows: Option<String> = sqlx::query_scalar(&format!(
            "SELECT json_agg(t ORDER BY {order})::text FROM {table} t"
        ))
        .fetch_one(&env.pool)
        .await
        .unwrap();
        s.push_str(table);
        s.push_str(&rows.unwrap_or_default());
        s.push('\n');
    }
    s
}

/// Runs a command that must be rejected: exit code 2, stderr mentioning every `needle`,
/// nothing changed in the database.
async fn rejected(env: &Env, args: &[&str], needles: &[&str]) {
    let before = snapshot(env).await;
    let out = rf(env, args);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} should fail with exit 2\nstdout: {}\nstderr: {err}",
        stdout(&out)
    );
    for n in needles {
        assert!(
            err.to_lowercase().contains(&n.to_lowercase()),
            "{args:?}: stderr should mention {n:?}: {err}"
        );
    }
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{args:?}: expected one error sentence, got: {err}"
    );
    assert_eq!(snapshot(env).await, before, "{args:?} changed the database");
}

fn job_add(env: &Env, name: &str, path: &str) -> String {
    let out = rf(
        env,
        &[
            "job",
            "add",
            "--device",
            &env.device,
            "--name",
            name,
            "--path",
            path,
        ],
    );
    assert_ok(&out);
    let id = stdout(&out).trim().to_string();
    uuid::Uuid::parse_str(&id).unwrap_or_else(|_| panic!("not a UUID alone: {id:?}"));
    id
}

#[tokio::test]
async fn device_commands_and_their_validation() {
    let env = Env::enrolled().await;
    let out = rf(
        &env,
        &[
            "device",
            "add",
            "laptop",
            "--name",
            "Alice's laptop",
            "--platform",
            "windows",
        ],
    );
    assert_ok(&out);
    let (name, platform, enabled): (String, String, bool) =
        sqlx::query_as("SELECT name, platform, enabled FROM devices WHERE id = 'laptop'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(
        (name.as_str(), platform.as_str(), enabled),
        ("Alice's laptop", "windows", true)
    );

    let list = json(&rf(&env, &["device", "list", "--json"]));
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["laptop", "test-device"]);
    for key in [
        "name",
        "platform",
        "hostname",
        "enabled",
        "last_seen",
        "job_count",
    ] {
        assert!(
            list[0].get(key).is_some(),
            "device list lacks {key}: {list}"
        );
    }
    let human = rf(&env, &["device", "list"]);
    assert_ok(&human);
    assert!(stdout(&human).contains("Alice's laptop"));
    assert!(stdout(&human).lines().all(|l| l.chars().count() <= 100));

    assert_ok(&rf(&env, &["device", "disable", "laptop"]));
    let show = json(&rf(&env, &["device", "show", "laptop", "--json"]));
    assert_eq!(show["enabled"], false);
    assert_eq!(show["jobs"], serde_json::json!([]));
    assert_ok(&rf(&env, &["device", "enable", "laptop"]));
    let show = json(&rf(&env, &["device", "show", "laptop", "--json"]));
    assert_eq!(show["enabled"], true);

    rejected(
        &env,
        &[
            "device",
            "add",
            "laptop",
            "--name",
            "x",
            "--platform",
            "linux",
        ],
        &["already exists"],
    )
    .await;
    rejected(
        &env,
        &[
            "device",
            "add",
            " padded",
            "--name",
            "x",
            "--platform",
            "linux",
        ],
        &["device id"],
    )
    .await;
    rejected(
        &env,
        &["device", "add", "mac", "--name", "x", "--platform", "macos"],
        &["platform"],
    )
    .await;
    rejected(
        &env,
        &["device", "enable", "ghost"],
        &["no device", "ghost"],
    )
    .await;
    rejected(&env, &["device", "show", "ghost"], &["no device"]).await;
    // Destructive without a terminal and without -y: refused, nothing removed.
    rejected(&env, &["device", "rm", "laptop"], &["-y", "not a terminal"]).await;

    job_add(&env, "home", "/home");
    let out = rf(&env, &["device", "rm", "test-device", "-y"]);
    assert_ok(&out);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM backup_jobs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the device's jobs go with it");
}

#[tokio::test]
async fn job_commands_and_their_validation() {
    let env = Env::enrolled().await;
    let id = job_add(&env, "home", "/home/alice");
    let out = rf(
        &env,
        &[
            "job",
            "add",
            "--device",
            &env.device,
            "--name",
            "docs",
            "--path",
            "/srv/docs",
            "--path",
            "/srv/more",
            "--exclude",
            "*.tmp",
            "--exclude",
            ".cache",
            "--restic-args",
            r#"["--one-file-system"]"#,
            "--json",
        ],
    );
    let added = json(&out);
    let docs = added["id"].as_str().unwrap().to_string();
    let (paths, excludes, args): (Vec<String>, Vec<String>, Value) = sqlx::query_as(
        "SELECT source_paths, exclude_patterns, restic_args FROM backup_jobs WHERE id = $1::uuid",
    )
    .bind(&docs)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(paths, vec!["/srv/docs", "/srv/more"]);
    assert_eq!(excludes, vec!["*.tmp", ".cache"]);
    assert_eq!(args, serde_json::json!(["--one-file-system"]));

    // list and show
    let list = json(&rf(
        &env,
        &["job", "list", "--device", &env.device, "--json"],
    ));
    assert_eq!(list.as_array().unwrap().len(), 2);
    for key in [
        "id",
        "device_id",
        "name",
        "source_paths",
        "exclude_patterns",
        "enabled",
        "schedules",
    ] {
        assert!(list[0].get(key).is_some(), "job list lacks {key}");
    }
    let show = json(&rf(&env, &["job", "show", &id, "--json"]));
    assert_eq!(show["name"], "home");
    assert_eq!(show["last_run"], Value::Null);
    let human = rf(&env, &["job", "list"]);
    assert_ok(&human);
    assert!(
        stdout(&human).lines().all(|l| l.chars().count() <= 100),
        "{}",
        stdout(&human)
    );

    // edit
    assert_ok(&rf(
        &env,
        &[
            "job",
            "edit",
            &id,
            "--name",
            "home2",
            "--path",
            "/home/bob",
            "--no-excludes",
        ],
    ));
    let show = json(&rf(&env, &["job", "show", &id, "--json"]));
    assert_eq!(show["name"], "home2");
    assert_eq!(show["source_paths"], serde_json::json!(["/home/bob"]));
    // disable / enable
    assert_ok(&rf(&env, &["job", "disable", &id]));
    assert_eq!(
        json(&rf(&env, &["job", "show", &id, "--json"]))["enabled"],
        false
    );
    assert_ok(&rf(&env, &["job", "enable", &id]));
    assert_eq!(
        json(&rf(&env, &["job", "show", &id, "--json"]))["enabled"],
        true
    );

    // validation: each rejected with exit 2 and nothing written
    let dev = env.device.clone();
    let add = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["job", "add"].iter().map(|s| s.to_string()).collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    assert_ok(&rf(
        &env,
        &[
            "device",
            "add",
            "winpc",
            "--name",
            "W",
            "--platform",
            "windows",
        ],
    ));
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            add(&["--device", "ghost", "--name", "x", "--path", "/x"]),
            vec!["no device", "ghost"],
        ),
        (
            add(&["--device", &dev, "--name", "x", "--path", "relative/dir"]),
            vec!["not an absolute"],
        ),
        (
            add(&["--device", &dev, "--name", "x", "--path", ""]),
            vec!["empty"],
        ),
        (add(&["--device", &dev, "--name", "x"]), vec!["--path"]),
        (
            add(&["--device", &dev, "--name", "docs", "--path", "/x"]),
            vec!["already has a job named"],
        ),
        (
            add(&["--device", &dev, "--name", "  ", "--path", "/x"]),
            vec!["job name"],
        ),
        (
            add(&[
                "--device",
                &dev,
                "--name",
                "x",
                "--path",
                "/x",
                "--restic-args",
                "one-file-system",
            ]),
            vec!["not valid JSON"],
        ),
        (
            add(&[
                "--device",
                &dev,
                "--name",
                "x",
                "--path",
                "/x",
                "--restic-args",
                r#"["-v", 3]"#,
            ]),
            vec!["array of strings", "element 1"],
        ),
        (
            add(&[
                "--device",
                &dev,
                "--name",
                "x",
                "--path",
                "/x",
                "--restic-args",
                r#"{"a":1}"#,
            ]),
            vec!["array of strings"],
        ),
        (
            add(&[
                "--device", &dev, "--name", "x", "--path", "/x", "--id", "nope",
            ]),
            vec!["not a UUID"],
        ),
        (
            add(&[
                "--device", &dev, "--name", "x", "--path", "/x", "--id", &docs,
            ]),
            vec!["already exists"],
        ),
        (
            add(&[
                "--device",
                &dev,
                "--name",
                "x",
                "--path",
                "/x",
                "--account-id",
                "12",
            ]),
            vec!["--account-id", "not a UUID"],
        ),
        (
            vec!["job".into(), "show".into(), "not-a-uuid".into()],
            vec!["no backup job named"],
        ),
        (
            vec![
                "job".into(),
                "show".into(),
                "00000000-0000-0000-0000-000000000000".into(),
            ],
            vec!["no backup job"],
        ),
        (
            vec!["job".into(), "edit".into(), id.clone()],
            vec!["nothing to change"],
        ),
        (
            vec![
                "job".into(),
                "edit".into(),
                id.clone(),
                "--name".into(),
                "docs".into(),
            ],
            vec!["already has a job named"],
        ),
        (
            vec![
                "job".into(),
                "edit".into(),
                id.clone(),
                "--device".into(),
                "ghost".into(),
            ],
            vec!["no device"],
        ),
        (
            vec![
                "job".into(),
                "edit".into(),
                id.clone(),
                "--restic-args".into(),
                "[1]".into(),
            ],
            vec!["array of strings"],
        ),
        (
            vec![
                "job".into(),
                "edit".into(),
                id.clone(),
                "--restic-args".into(),
                "null".into(),
            ],
            vec!["array of strings"],
        ),
        (
            // /home/alice is no Windows path: moving the job needs new paths.
            vec![
                "job".into(),
                "edit".into(),
                id.clone(),
                "--device".into(),
                "winpc".into(),
            ],
            vec!["not an absolute windows path", "--path"],
        ),
        (vec!["job".into(), "rm".into(), id.clone()], vec!["-y"]),
        (
            vec![
                "job".into(),
                "disable".into(),
                "00000000-0000-0000-0000-000000000000".into(),
            ],
            vec!["no backup job"],
        ),
    ];
    for (args, needles) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rejected(&env, &args, needles).await;
    }

    // rm with -y
    assert_ok(&rf(&env, &["job", "rm", &id, "-y"]));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM backup_jobs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn schedule_commands_compute_next_run_in_the_device_zone() {
    let env = Env::enrolled().await;
    let job = job_add(&env, "home", "/home");
    // A per-device time zone: 02:00 in Tokyo is 17:00 UTC.
    assert_ok(&rf(
        &env,
        &[
            "settings",
            "set",
            "timezone",
            "Asia/Tokyo",
            "--device",
            &env.device,
        ],
    ));
    let added = json(&rf(
        &env,
        &["schedule", "add", &job, "--cron", "0 2 * * *", "--json"],
    ));
    let sid = added["id"].as_i64().unwrap().to_string();
    assert_eq!(added["schedule_type"], "cron");
    assert_eq!(added["job_name"], "home");
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(added["next_run_at"].clone()).unwrap();
    use chrono::Timelike;
    assert_eq!((next.hour(), next.minute()), (17, 0), "{next}");
    assert!(next > chrono::Utc::now());

    // An interval with a unit: 1h is 3600 seconds.
    let out = rf(&env, &["schedule", "add", &job, "--interval", "1h"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("every 3600s"), "{}", stdout(&out));

    let list = json(&rf(&env, &["schedule", "list", "--job", &job, "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 2);
    for key in [
        "id",
        "job_id",
        "job_name",
        "device_id",
        "schedule_type",
        "cron_expression",
        "interval_seconds",
        "enabled",
        "last_run_at",
        "next_run_at",
    ] {
        assert!(list[0].get(key).is_some(), "schedule list lacks {key}");
    }

    assert_ok(&rf(&env, &["schedule", "disable", &sid]));
    let row: (bool, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT enabled, next_run_at FROM schedules WHERE id = $1")
            .bind(sid.parse::<i32>().unwrap())
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(row, (false, None));
    assert_ok(&rf(&env, &["schedule", "enable", &sid]));
    let row: (bool, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT enabled, next_run_at FROM schedules WHERE id = $1")
            .bind(sid.parse::<i32>().unwrap())
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(row, (true, Some(next)));

    rejected(
        &env,
        &["schedule", "add", &job, "--cron", "61 * * * *"],
        &["minute", "61"],
    )
    .await;
    rejected(
        &env,
        &["schedule", "add", &job, "--cron", "0 2 * *"],
        &["5 fields"],
    )
    .await;
    rejected(
        &env,
        &["schedule", "add", &job, "--cron", "0 2 * * funday"],
        &["day-of-week"],
    )
    .await;
    rejected(
        &env,
        &["schedule", "add", &job, "--interval", "0"],
        &["positive"],
    )
    .await;
    rejected(
        &env,
        &["schedule", "add", &job, "--interval", "-60"],
        &["positive"],
    )
    .await;
    rejected(
        &env,
        &["schedule", "add", &job, "--interval", "soon"],
        &["\"soon\" is not an interval", "30m, 1h, 2d"],
    )
    .await;
    rejected(&env, &["schedule", "add", &job], &["--cron"]).await;
    rejected(
        &env,
        &[
            "schedule",
            "add",
            &job,
            "--cron",
            "@daily",
            "--interval",
            "60",
        ],
        &["cannot be used with"],
    )
    .await;
    rejected(
        &env,
        &["schedule", "add", "nope", "--cron", "@daily"],
        &["no backup job named"],
    )
    .await;
    rejected(
        &env,
        &[
            "schedule",
            "add",
            "00000000-0000-0000-0000-000000000000",
            "--cron",
            "@daily",
        ],
        &["no backup job"],
    )
    .await;
    rejected(&env, &["schedule", "rm", "abc"], &["not a schedule id"]).await;
    rejected(
        &env,
        &["schedule", "rm", "99999", "-y"],
        &["no schedule with id 99999"],
    )
    .await;
    rejected(&env, &["schedule", "rm", &sid], &["-y"]).await;
    rejected(
        &env,
        &["schedule", "list", "--device", "ghost"],
        &["no device"],
    )
    .await;

    assert_ok(&rf(&env, &["schedule", "rm", &sid, "-y"]));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM schedules")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn settings_commands_mask_the_password_and_validate() {
    let env = Env::enrolled().await;
    // Global upsert over the seeded default, and the password from stdin.
    assert_ok(&rf(
        &env,
        &["settings", "set", "repository_url", "/srv/restic"],
    ));
    let out = with_stdin(
        &env,
        &["settings", "set", "repository_password", "-"],
        "s3cret pw\n",
    );
    assert_ok(&out);
    assert!(!stdout(&out).contains("s3cret"), "{}", stdout(&out));
    let rows: Vec<(Option<String>, String)> =
        sqlx::query_as("SELECT device_id, value FROM settings WHERE key = 'repository_password'")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![(None, "s3cret pw".to_string())],
        "one global row, upserted"
    );

    let get = rf(&env, &["settings", "get", "repository_password"]);
    assert_ok(&get);
    assert_eq!(stdout(&get).trim(), "***");
    let get = rf(
        &env,
        &["settings", "get", "repository_password", "--show-secrets"],
    );
    assert_eq!(stdout(&get).trim(), "s3cret pw");
    let list = rf(&env, &["settings", "list"]);
    assert_ok(&list);
    assert!(!stdout(&list).contains("s3cret"));
    assert!(
        stdout(&list).lines().all(|l| l.chars().count() <= 100),
        "{}",
        stdout(&list)
    );
    let list = json(&rf(&env, &["settings", "list", "--json"]));
    let pw = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "repository_password")
        .unwrap();
    assert_eq!(pw["value"], "***");
    assert_eq!(pw["scope"], "global");
    let list = json(&rf(&env, &["settings", "list", "--json", "--show-secrets"]));
    assert!(list.to_string().contains("s3cret pw"));

    // Per device: override and effective value.
    assert_ok(&rf(
        &env,
        &[
            "settings",
            "set",
            "sync_interval_seconds",
            "60",
            "--device",
            &env.device,
        ],
    ));
    assert_ok(&rf(
        &env,
        &[
            "settings",
            "set",
            "sync_interval_seconds",
            "600",
            "--device",
            &env.device,
        ],
    ));
    let eff = json(&rf(
        &env,
        &[
            "settings",
            "get",
            "sync_interval_seconds",
            "--device",
            &env.device,
            "--json",
        ],
    ));
    assert_eq!(eff["value"], "600");
    assert_eq!(eff["scope"], "device");
    let global = rf(&env, &["settings", "get", "sync_interval_seconds"]);
    assert_eq!(stdout(&global).trim(), "300");

    rejected(
        &env,
        &["settings", "set", "sync_interval_seconds", "five"],
        &["sync_interval_seconds", "whole number"],
    )
    .await;
    rejected(
        &env,
        &["settings", "set", "sync_interval_seconds", "0"],
        &["from 1 to 2147483647"],
    )
    .await;
    // Numbers so large that time arithmetic with them would overflow are refused.
    rejected(
        &env,
        &[
            "settings",
            "set",
            "missed_run_grace_seconds",
            "100000000000000",
        ],
        &["missed_run_grace_seconds", "from 0 to 2147483647"],
    )
    .await;
    rejected(
        &env,
        &["settings", "set", "run_retention_days", "-3"],
        &["run_retention_days"],
    )
    .await;
    rejected(
        &env,
        &["settings", "set", "timezone", "Mars/Olympus"],
        &["IANA"],
    )
    .await;
    rejected(&env, &["settings", "set", "Bad Key", "x"], &["setting key"]).await;
    rejected(
        &env,
        &["settings", "set", "timezone", "UTC", "--device", "ghost"],
        &["no device"],
    )
    .await;
    rejected(
        &env,
        &["settings", "get", "no_such_key"],
        &["unknown setting"],
    )
    .await;
    rejected(
        &env,
        &["settings", "unset", "no_such_key", "-y"],
        &["unknown setting"],
    )
    .await;
    rejected(
        &env,
        &[
            "settings",
            "unset",
            "sync_interval_seconds",
            "--device",
            &env.device,
        ],
        &["-y"],
    )
    .await;

    assert_ok(&rf(
        &env,
        &[
            "settings",
            "unset",
            "sync_interval_seconds",
            "--device",
            &env.device,
            "-y",
        ],
    ));
    let eff = rf(
        &env,
        &[
            "settings",
            "get",
            "sync_interval_seconds",
            "--device",
            &env.device,
        ],
    );
    assert_eq!(stdout(&eff).trim(), "300");
}

#[tokio::test]
async fn runs_list_filters_and_show_prints_restic_output() {
    let env = Env::enrolled().await;
    let a = job_add(&env, "a", "/a");
    let b = job_add(&env, "b", "/b");
    for (job, status, days_ago, output) in [
        (&a, "success", 1, "snapshot 1111 saved"),
        (&a, "failed", 10, "boom"),
        (&b, "success", 2, "snapshot 2222 saved"),
        (&b, "running", 0, ""),
    ] {
        sqlx::query(
            "INSERT INTO runs (job_id, device_id, start_time, end_time, status, restic_output, \
             triggered_by) VALUES ($1::uuid, $2, NOW() - make_interval(days => $3), \
             CASE WHEN $4 = 'running' THEN NULL ELSE NOW() - make_interval(days => $3) + interval '1 minute' END, \
             $4, $5, 'schedule')",
        )
        .bind(job)
        .bind(&env.device)
        .bind(days_ago)
        .bind(status)
        .bind(output)
        .execute(&env.pool)
        .await
        .unwrap();
    }
    let all = json(&rf(&env, &["runs", "list", "--json"]));
    assert_eq!(all.as_array().unwrap().len(), 4);
    for key in [
        "id",
        "job_id",
        "job_name",
        "device_id",
        "status",
        "start_time",
        "end_time",
        "duration_seconds",
        "exit_code",
        "error_message",
        "snapshot_id",
        "data_added_bytes",
        "triggered_by",
    ] {
        assert!(all[0].get(key).is_some(), "runs list lacks {key}");
    }
    assert_eq!(all[0]["status"], "running", "newest first");
    let failed = json(&rf(&env, &["runs", "list", "--status", "failed", "--json"]));
    assert_eq!(failed.as_array().unwrap().len(), 1);
    let of_a = json(&rf(&env, &["runs", "list", "--job", &a, "--json"]));
    assert_eq!(of_a.as_array().unwrap().len(), 2);
    let recent = json(&rf(&env, &["runs", "list", "--since", "3d", "--json"]));
    assert_eq!(recent.as_array().unwrap().len(), 3);
    let old = json(&rf(&env, &["runs", "list", "--until", "5d", "--json"]));
    assert_eq!(old.as_array().unwrap().len(), 1);
    let dev = json(&rf(
        &env,
        &[
            "runs",
            "list",
            "--device",
            &env.device,
            "--limit",
            "2",
            "--json",
        ],
    ));
    assert_eq!(dev.as_array().unwrap().len(), 2);
    let human = rf(&env, &["runs", "list"]);
    assert_ok(&human);
    assert!(stdout(&human).lines().all(|l| l.chars().count() <= 100));

    let id = failed[0]["id"].as_i64().unwrap().to_string();
    let show = rf(&env, &["runs", "show", &id]);
    assert_ok(&show);
    assert!(stdout(&show).contains("boom"), "{}", stdout(&show));
    let show = json(&rf(&env, &["runs", "show", &id, "--json"]));
    assert_eq!(show["restic_output"], "boom");

    rejected(
        &env,
        &["runs", "list", "--since", "yesterday"],
        &["--since", "RFC 3339"],
    )
    .await;
    rejected(&env, &["runs", "list", "--status", "exploded"], &["status"]).await;
    rejected(
        &env,
        &["runs", "list", "--job", "x"],
        &["no backup job named"],
    )
    .await;
    rejected(&env, &["runs", "list", "--device", "ghost"], &["no device"]).await;
    rejected(
        &env,
        &["runs", "list", "--since", "1d", "--until", "3d"],
        &["after"],
    )
    .await;
    rejected(&env, &["runs", "show", "999999"], &["no run with id"]).await;
    rejected(&env, &["runs", "show", "x"], &["not a run id"]).await;
}

#[tokio::test]
async fn cleanup_deletes_old_finished_runs_but_never_running_ones() {
    let env = Env::enrolled().await;
    let job = job_add(&env, "a", "/a");
    for (status, days_ago) in [
        ("success", 200),
        ("failed", 120),
        ("cancelled", 95),
        ("running", 150),
        ("success", 10),
    ] {
        sqlx::query(
            "INSERT INTO runs (job_id, device_id, start_time, status) \
             VALUES ($1::uuid, $2, NOW() - make_interval(days => $3), $4)",
        )
        .bind(&job)
        .bind(&env.device)
        .bind(days_ago)
        .bind(status)
        .execute(&env.pool)
        .await
        .unwrap();
    }
    let dry = json(&rf(&env, &["cleanup", "--dry-run", "--json"]));
    assert_eq!(dry["deleted"], 3);
    assert_eq!(dry["retention_days"], 90);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 5, "dry run deletes nothing");
    let out = rf(&env, &["cleanup"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("deleted 3"), "{}", stdout(&out));
    let left: Vec<(String,)> = sqlx::query_as("SELECT status FROM runs ORDER BY start_time")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(left, vec![("running".into(),), ("success".into(),)]);
}

#[tokio::test]
async fn completions_and_man_page_come_from_the_clap_definitions() {
    let env = Env::empty().await;
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = rf(&env, &["completions", shell]);
        assert_ok(&out);
        assert!(stdout(&out).contains("restic-fleet"), "{shell}");
    }
    let bash = stdout(&rf(&env, &["completions", "bash"]));
    assert!(bash.contains("schedule") && bash.contains("--interval"));
    let out = rf(&env, &["man"]);
    assert_ok(&out);
    let page = stdout(&out);
    assert!(page.contains(".TH") && page.contains("status"), "{page}");
    let dir = env.dir.path().join("man");
    assert_ok(&rf(&env, &["man", "--out-dir", dir.to_str().unwrap()]));
    assert!(dir.join("restic-fleet.1").exists());
    assert!(dir.join("restic-fleet-job-add.1").exists());
    let out = rf(&env, &["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn admin_commands_work_with_only_a_database_url() {
    let env = Env::enrolled().await;
    // No config file: --database-url alone, or DATABASE_URL alone.
    let out = env
        .cmd()
        .env("RESTIC_FLEET_CONFIG", env.dir.path().join("missing.toml"))
        .args(["device", "list", "--json", "--database-url", &env.url])
        .output()
        .unwrap();
    assert_eq!(json(&out).as_array().unwrap().len(), 1);
    let out = env
        .cmd()
        .env("RESTIC_FLEET_CONFIG", env.dir.path().join("missing.toml"))
        .env("DATABASE_URL", &env.url)
        .args(["job", "list", "--json"])
        .output()
        .unwrap();
    assert_eq!(json(&out), serde_json::json!([]));
    let out = env
        .cmd()
        .env("RESTIC_FLEET_CONFIG", env.dir.path().join("missing.toml"))
        .env("DATABASE_URL", &env.url)
        .args(["db", "migrate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("schema is at version"),
        "{}",
        stdout(&out)
    );
    let out = env
        .cmd()
        .env("RESTIC_FLEET_CONFIG", env.dir.path().join("missing.toml"))
        .args(["device", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--database-url"), "{}", stderr(&out));
}

/// A job name never reads as `DEVICE/NAME`: `/` is refused in new names, and a name that
/// matches both a job named literally (from before the rule) and a `DEVICE/NAME` pair is
/// refused with every candidate's UUID, by which each stays addressable.
#[tokio::test]
async fn slashes_in_job_names_are_refused_and_never_ambiguous() {
    let env = Env::enrolled().await;
    let add = [
        "job",
        "add",
        "--device",
        &env.device,
        "--name",
        "nas/etc",
        "--path",
        "/etc",
    ];
    rejected(&env, &add, &["\"nas/etc\"", "'/'", "nas-etc"]).await;
    let job = job_add(&env, "etc", "/etc");
    rejected(&env, &["job", "edit", &job, "--name", "a/b"], &["'/'"]).await;

    assert_ok(&rf(
        &env,
        &[
            "device",
            "add",
            "nas",
            "--name",
            "nas",
            "--platform",
            "linux",
        ],
    ));
    let mut ids = Vec::new();
    for (device, name) in [("nas", "etc"), (env.device.as_str(), "nas/etc")] {
        let id: uuid::Uuid = sqlx::query_scalar(
            "INSERT INTO backup_jobs (device_id, name, source_paths) \
             VALUES ($1, $2, ARRAY['/etc']) RETURNING id",
        )
        .bind(device)
        .bind(name)
        .fetch_one(&env.pool)
        .await
        .unwrap();
        ids.push(id.to_string());
    }
    for args in [
        &["job", "show", "nas/etc"][..],
        &["job", "rm", "nas/etc", "-y"],
    ] {
        rejected(&env, args, &["ambiguous", &ids[0], &ids[1], "UUID"]).await;
    }
    let shown = json(&rf(&env, &["job", "show", &ids[1], "--json"]));
    assert_eq!(shown["name"], "nas/etc", "{shown}");
}

/// A path that does not exist on this machine is saved (the job's device may be another
/// machine) with a warning naming it; an existing path gets none.
#[tokio::test]
async fn job_paths_missing_here_are_a_warning() {
    let env = Env::enrolled().await;
    let gone = env.dir.path().join("gone-folder");
    let gone = gone.to_str().unwrap();
    let args = [
        "job",
        "add",
        "--device",
        &env.device,
        "--name",
        "docs",
        "--path",
        gone,
    ];
    let out = rf(&env, &args);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.starts_with("warning:") && err.contains(gone) && err.contains("does not exist"),
        "{err}"
    );
    let id = stdout(&out).trim().to_string();
    let here = env.dir.path().to_str().unwrap();
    let out = rf(&env, &["job", "edit", &id, "--path", here]);
    assert_ok(&out);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let out = rf(&env, &["job", "edit", &id, "--path", here, "--path", gone]);
    assert_ok(&out);
    assert!(stderr(&out).contains(gone), "{}", stderr(&out));
}

#[tokio::test]
async fn an_admin_config_with_only_a_database_url_serves_every_admin_command() {
    let env = Env::empty().await;
    std::fs::write(env.config_path(), format!("database_url = {:?}\n", env.url)).unwrap();
    let src = env.dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // An empty fleet points to the command that exists and gives a device its own login.
    let out = rf(&env, &["device", "list"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("enrol one with `restic-fleet device enroll ID"),
        "{}",
        stdout(&out)
    );
    let help = stdout(&rf(&env, &["init", "--help"]));
    assert!(
        help.contains("device's own login") && !help.contains("backup_client"),
        "{help}"
    );
    for args in [
        vec!["db", "migrate"],
        vec![
            "device",
            "add",
            &env.device,
            "--name",
            "Web",
            "--platform",
            "linux",
        ],
        vec!["device", "list"],
        vec!["device", "show", &env.device],
        vec!["settings", "set", "timezone", "UTC"],
        vec!["settings", "get", "timezone"],
        vec!["settings", "list"],
    ] {
        let out = rf(&env, &args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
    let job = job_add(&env, "etc", src.to_str().unwrap());
    let qualified = format!("{}/etc", env.device);
    for args in [
        vec!["job", "list"],
        vec!["job", "show", &qualified],
        vec!["schedule", "add", &job, "--cron", "30 2 * * *"],
        vec!["schedule", "list"],
        vec!["schedule", "preview", "--job", "etc", "--count", "2"],
        vec!["runs", "list"],
        vec!["status", "--json"],
        vec!["metrics"],
        vec!["cleanup", "--dry-run"],
    ] {
        let out = rf(&env, &args);
        // `status` exits 1 for a job that never ran; it still reports.
        let want = if args[0] == "status" { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(want), "{args:?}: {}", stderr(&out));
    }
    // `schedule preview --job` also takes --database-url on a machine without any config.
    let out = env
        .cmd()
        .env("RESTIC_FLEET_CONFIG", env.dir.path().join("missing.toml"))
        .args(["schedule", "preview", "--job", &job, "--json"])
        .args(["--database-url", &env.url, "--from", "2027-01-01T00:00:00Z"])
        .output()
        .unwrap();
    assert_eq!(json(&out)["next"][0], "2027-01-01T02:30:00+00:00");

    // What only a device does is refused in one sentence that says how to enrol one.
    for args in [
        vec!["run", job.as_str()],
        vec!["sync"],
        vec!["spool", "list"],
        vec!["maintain", "--dry-run"],
    ] {
        let out = rf(&env, &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("names no device_id (it is an admin config)")
                && err.contains("restic-fleet device enroll ID")
                && !err.contains("missing field"),
            "{args:?}: {err}"
        );
    }
    // `init` would overwrite the admin's config: refused, naming --config.
    let out = rf(
        &env,
        &["init", "--database-url", &env.url, "--device-id", "web1"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is an admin config") && err.contains("--config PATH"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(env.config_path()).unwrap(),
        format!("database_url = {:?}\n", env.url)
    );
}
