//! `db roles`: backup_client is a group without login (devices log in with their own roles,
//! see tests/security.rs); backup_viewer can only read; backup_admin manages everything.
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
        "admin-pw\nviewer-pw\n",
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

    // backup_client no longer logs in: a shared client login from before is switched off.
    assert!(sqlx::PgConnection::connect(&client).await.is_err());
    let login: bool =
        sqlx::query_scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'backup_client'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(!login);
    // A run (as the config's superuser) for the viewer to see.
    assert_ok(&env.cmd().arg("run").arg(job.to_string()).output().unwrap());

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

    // Default privileges: a table made later (by a new migration) is readable by viewers,
    // and reaches devices only when a migration and DEVICE_GRANTS say so.
    sqlx::query("CREATE TABLE later_table (id SERIAL PRIMARY KEY, v TEXT)")
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO later_table (v) VALUES ('x')")
        .execute(&env.pool)
        .await
        .unwrap();
    let client_may: bool = sqlx::query_scalar(
        "SELECT has_table_privilege('backup_client', 'later_table', 'SELECT') \
             OR has_table_privilege('backup_client', 'later_table', 'INSERT')",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(!client_may, "devices get nothing on a new table by default");
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
