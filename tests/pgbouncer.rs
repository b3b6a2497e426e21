//! restic-fleet behind a real PgBouncer (Debian's 1.18) in transaction pooling mode, started
//! by scripts/test.sh in front of the test PostgreSQL with a server pool of 4 connections, so
//! that concurrent clients really share server connections: `init` (concurrent migrations),
//! `run`, `sync`, `status` and admin commands, and many concurrent syncs.

mod common;

use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

/// The PgBouncer URL for this test's database, with `pgbouncer=true`.
fn bouncer_url(env: &Env) -> String {
    let base = std::env::var("RESTIC_FLEET_TEST_PGBOUNCER").expect(
        "RESTIC_FLEET_TEST_PGBOUNCER is not set: run the tests with scripts/test.sh, which starts \
         a PgBouncer (Debian package pgbouncer) in front of the private PostgreSQL",
    );
    let cut = base.rfind('/').expect("url has a path");
    format!("{}/{}?pgbouncer=true", &base[..cut], env.db)
}

fn rf(env: &Env, args: &[&str]) -> Output {
    env.cmd().args(args).stdin(Stdio::null()).output().unwrap()
}

fn json(out: &Output) -> Value {
    assert_ok(out);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(out), stderr(out)))
}

fn spawn(cmd: &mut Command) -> std::process::Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn init_run_sync_status_and_admin_commands_through_pgbouncer() {
    let env = Env::empty().await;
    let url = bouncer_url(&env);

    // Without pgbouncer=true sqlx sends a startup parameter PgBouncer refuses: the test really
    // goes through PgBouncer, and the setting matters.
    let plain = url.trim_end_matches("?pgbouncer=true");
    let refused = rf(&env, &["init", "--database-url", plain, "--device-id", "x"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("extra_float_digits"),
        "{}",
        stderr(&refused)
    );

    // Eight machines enrol at once into an empty database: one of them migrates, under a lock
    // that holds until its transaction commits; all succeed.
    let mut children = Vec::new();
    for i in 0..8 {
        let cfg = env.dir.path().join(format!("peer{i}.toml"));
        children.push(spawn(
            env.cmd()
                .env("RESTIC_FLEET_CONFIG", &cfg)
                .args(["init", "--database-url", &url, "--device-id"])
                .arg(format!("peer-{i}")),
        ));
    }
    for c in children {
        assert_ok(&c.wait_with_output().unwrap());
    }
    assert_ok(&rf(
        &env,
        &["init", "--database-url", &url, "--device-id", &env.device],
    ));
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(
        versions.last().copied(),
        Some(restic_fleet::store::db::latest_version())
    );
    let devices: i64 = sqlx::query_scalar("SELECT count(*) FROM devices")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(devices, 9);

    // A repository, a job and a schedule, set up with admin commands through PgBouncer.
    let repo = env.repo();
    let out = env.restic(&["init", "--quiet"]);
    assert_ok(&out);
    assert_ok(&rf(
        &env,
        &["settings", "set", "repository_url", repo.to_str().unwrap()],
    ));
    assert_ok(&with_stdin(
        &env,
        &["settings", "set", "repository_password", "-"],
        PASSWORD,
    ));
    let src = env.make_source("src", 4);
    let job = json(&rf(
        &env,
        &[
            "job",
            "add",
            "--device",
            &env.device,
            "--name",
            "docs",
            "--path",
            src.to_str().unwrap(),
            "--json",
        ],
    ));
    let job_id = job["id"]
        .as_str()
        .or(job["job_id"].as_str())
        .unwrap()
        .to_string();
    assert_ok(&rf(
        &env,
        &["schedule", "add", &job_id, "--cron", "0 3 * * *"],
    ));

    // run and sync (the config written by init holds the PgBouncer URL).
    let cfg = std::fs::read_to_string(env.config_path()).unwrap();
    assert!(cfg.contains("pgbouncer=true"), "{cfg}");
    let report = json(&rf(&env, &["run", &job_id, "--json"]));
    assert_eq!(report["status"], "success", "{report}");
    let (fake, _log) = fake_tool(&env, "systemctl", "");
    let units = env.dir.path().join("units");
    let sync = env
        .cmd()
        .env("PATH", path_with(&fake))
        .args(["sync", "--json", "--unit-dir"])
        .arg(&units)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let sync = json(&sync);
    assert!(
        sync["failed"].as_array().is_none_or(|f| f.is_empty()),
        "{sync}"
    );

    // What run and sync wrote is in the database (committed, not lost in a pooled transaction).
    let (status, snapshot): (String, String) =
        sqlx::query_as("SELECT status, snapshot_id FROM runs")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(status, "success");
    assert_eq!(snapshot.len(), 64, "sync resolved the full snapshot id");
    let next: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT next_run_at FROM schedules")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(next.is_some());
    let seen: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_seen FROM devices WHERE id = $1")
            .bind(&env.device)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(seen.is_some(), "sync's heartbeat was committed");

    // Read commands and cleanup.
    let status = json(&rf(&env, &["status", "--json", "--device", &env.device]));
    assert_eq!(status["jobs"][0]["verdict"], "ok", "{status}");
    assert_eq!(status["jobs"][0]["last_run_status"], "success");
    let runs = json(&rf(&env, &["runs", "list", "--json", "--job", &job_id]));
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    let cleanup = json(&rf(&env, &["cleanup", "--json"]));
    assert_eq!(cleanup["deleted"], 0);
    assert_ok(&rf(&env, &["device", "list"]));
    assert_ok(&rf(&env, &["db", "migrate", "--database-url", &url]));
}

#[tokio::test]
async fn many_concurrent_syncs_and_status_reads_share_four_server_connections() {
    let env = Env::empty().await;
    let url = bouncer_url(&env);
    assert_ok(&rf(
        &env,
        &["init", "--database-url", &url, "--device-id", &env.device],
    ));
    let (fake, _log) = fake_tool(&env, "systemctl", "");
    let mut children = Vec::new();
    for i in 0..24 {
        let cfg = env.dir.path().join(format!("d{i}.toml"));
        std::fs::write(
            &cfg,
            format!("database_url = \"{url}\"\ndevice_id = \"dev-{i}\"\n"),
        )
        .unwrap();
        sqlx::query("INSERT INTO devices (id, name, platform) VALUES ($1, $1, 'linux')")
            .bind(format!("dev-{i}"))
            .execute(&env.pool)
            .await
            .unwrap();
        sqlx::query(
            "WITH j AS (INSERT INTO backup_jobs (device_id, name, source_paths) \
                        VALUES ($1, 'j', ARRAY['/etc']) RETURNING id) \
             INSERT INTO schedules (job_id, schedule_type, cron_expression) \
             SELECT id, 'cron', '0 4 * * *' FROM j",
        )
        .bind(format!("dev-{i}"))
        .execute(&env.pool)
        .await
        .unwrap();
        children.push(spawn(
            env.cmd()
                .env("RESTIC_FLEET_CONFIG", &cfg)
                .env("PATH", path_with(&fake))
                .args(["sync", "--json", "--unit-dir"])
                .arg(env.dir.path().join(format!("units{i}"))),
        ));
        if i % 3 == 0 {
            children.push(spawn(env.cmd().args(["status", "--json"])));
        }
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        // status exits 1 (jobs never ran); anything else is a failure.
        assert!(
            matches!(out.status.code(), Some(0) | Some(1)) && !stdout(&out).is_empty(),
            "{:?}\n{}\n{}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        assert!(!stderr(&out).contains("error"), "{}", stderr(&out));
    }
    let synced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM devices WHERE id LIKE 'dev-%' AND last_seen IS NOT NULL",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(synced, 24);
    let scheduled: i64 =
        sqlx::query_scalar("SELECT count(*) FROM schedules WHERE next_run_at IS NOT NULL")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(scheduled, 24);
}
