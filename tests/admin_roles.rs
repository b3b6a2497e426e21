//! `db roles`: backup_client can run and sync but cannot delete; backup_viewer can only read.
//! Roles are cluster-wide and the test cluster is shared by parallel tests, so every role
//! check lives in this one test (the command itself is idempotent).

mod common;

use std::process::{Output, Stdio};

use common::*;
use serde_json::Value;
use sqlx::Connection;

fn as_role(env: &Env, url: &str, args: &[&str]) -> Output {
    env.cmd()
        .env("DATABASE_URL", url)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn denied(out: &Output, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what} should be refused\nstdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    let err = stderr(out);
    assert!(
        err.contains("permission denied") && err.contains("backup_admin"),
        "{what}: {err}"
    );
}

#[tokio::test]
async fn roles_client_runs_and_syncs_but_cannot_delete_viewer_only_reads() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 3);
    let job = env.add_job("home", &[&src]).await;
    sqlx::query(
        "INSERT INTO schedules (job_id, schedule_type, interval_seconds) VALUES ($1, 'interval', 3600)",
    )
    .bind(job)
    .execute(&env.pool)
    .await
    .unwrap();

    // Validation first: no password anywhere is a usage error, and no role is touched.
    let out = with_stdin(&env, &["db", "roles", "--database-url", &env.url], "");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no password for backup_admin"),
        "{}",
        stderr(&out)
    );
    let missing = env.dir.path().join("missing");
    let out = with_stdin(
        &env,
        &[
            "db",
            "roles",
            "--database-url",
            &env.url,
            "--admin-password-file",
            missing.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("password file"), "{}", stderr(&out));

    // From files, then again from standard input (safe to run twice).
    let mut files = Vec::new();
    for role in ["admin", "client", "viewer"] {
        let f = env.dir.path().join(format!("{role}.pw"));
        std::fs::write(&f, format!("{role}-pw\n")).unwrap();
        files.push(f);
    }
    let out = env
        .cmd()
        .args(["db", "roles", "--database-url", &env.url, "--json"])
        .arg("--admin-password-file")
        .arg(&files[0])
        .arg("--client-password-file")
        .arg(&files[1])
        .arg("--viewer-password-file")
        .arg(&files[2])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["database"], env.db);
    assert_eq!(report["roles"].as_array().unwrap().len(), 3);
    assert!(!stdout(&out).contains("-pw"));
    let out = with_stdin(
        &env,
        &["db", "roles", "--database-url", &env.url],
        "admin-pw\nclient-pw\nviewer-pw\n",
    );
    assert_ok(&out);
    assert!(
        stdout(&out).contains("updated role backup_client"),
        "{}",
        stdout(&out)
    );

    let client = url_with_user(&env.db, "backup_client", "client-pw");
    let viewer = url_with_user(&env.db, "backup_viewer", "viewer-pw");
    let admin = url_with_user(&env.db, "backup_admin", "admin-pw");

    // backup_client: run (SELECT, INSERT, UPDATE) works.
    let out = as_role(&env, &client, &["run", &job.to_string()]);
    assert_ok(&out);
    let (status, last): (String, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "SELECT r.status, s.last_run_at FROM runs r JOIN schedules s ON s.job_id = r.job_id",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(status, "success");
    assert!(last.is_some(), "run updated the schedule as backup_client");
    // sync works too (fake systemctl, private unit dir).
    let bin = env.dir.path().join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("systemctl"), "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        bin.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let units = env.dir.path().join("units");
    let out = env
        .cmd()
        .env("DATABASE_URL", &client)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .args(["sync", "--json", "--unit-dir"])
        .arg(&units)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&out);
    // Updates and inserts through the admin commands work as backup_client ...
    assert_ok(&as_role(
        &env,
        &client,
        &[
            "job",
            "edit",
            &job.to_string(),
            "--description",
            "by client",
        ],
    ));
    assert_ok(&as_role(
        &env,
        &client,
        &["settings", "set", "schedule_jitter_seconds", "5"],
    ));
    // ... deleting does not, with a clear sentence, and nothing is deleted.
    denied(
        &as_role(&env, &client, &["job", "rm", &job.to_string(), "-y"]),
        "job rm as client",
    );
    denied(&as_role(&env, &client, &["cleanup"]), "cleanup as client");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM backup_jobs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    let mut conn = sqlx::PgConnection::connect(&client).await.unwrap();
    let e = sqlx::query("DELETE FROM runs")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("permission denied"), "{e}");
    let e = sqlx::query("INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (999, 'x', NOW(), true, ''::bytea, 0)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("permission denied"), "{e}");
    conn.close().await.ok();

    // backup_viewer: status and the list commands work; any write is refused.
    let out = as_role(&env, &viewer, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["jobs"][0]["verdict"], "ok");
    assert_ok(&as_role(&env, &viewer, &["runs", "list", "--json"]));
    assert_ok(&as_role(&env, &viewer, &["job", "list"]));
    assert_ok(&as_role(&env, &viewer, &["settings", "list"]));
    denied(
        &as_role(
            &env,
            &viewer,
            &["device", "add", "x", "--name", "x", "--platform", "linux"],
        ),
        "device add as viewer",
    );
    denied(
        &as_role(
            &env,
            &viewer,
            &["settings", "set", "schedule_jitter_seconds", "7"],
        ),
        "settings set as viewer",
    );
    let out = as_role(&env, &viewer, &["run", &job.to_string()]);
    assert_ne!(out.status.code(), Some(0), "viewer cannot record a run");
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(runs, 1);

    // backup_admin manages everything, deletes included.
    assert_ok(&as_role(&env, &admin, &["cleanup"]));
    assert_ok(&as_role(
        &env,
        &admin,
        &[
            "device",
            "add",
            "extra",
            "--name",
            "x",
            "--platform",
            "linux",
        ],
    ));
    assert_ok(&as_role(&env, &admin, &["device", "rm", "extra", "-y"]));

    // Default privileges: a table made later (by a new migration) is covered.
    sqlx::query("CREATE TABLE later_table (id SERIAL PRIMARY KEY, v TEXT)")
        .execute(&env.pool)
        .await
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(&client).await.unwrap();
    sqlx::query("INSERT INTO later_table (v) VALUES ('x')")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let mut conn = sqlx::PgConnection::connect(&viewer).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM later_table")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(
        sqlx::query("INSERT INTO later_table (v) VALUES ('y')")
            .execute(&mut conn)
            .await
            .is_err()
    );
    conn.close().await.ok();
}
