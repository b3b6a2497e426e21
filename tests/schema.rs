//! Migrations: the seed schema, concurrent first connections, and roles that may not migrate.

mod common;

use common::*;

const TABLES: &[&str] = &["devices", "backup_jobs", "schedules", "runs", "settings"];

#[tokio::test]
async fn twenty_clients_at_once_migrate_an_empty_database_once() {
    let env = Env::empty().await;
    let mut children = Vec::new();
    for i in 0..20 {
        let cfg = env.dir.path().join(format!("c{i}.toml"));
        children.push(
            env.cmd()
                .env("RESTIC_FLEET_CONFIG", &cfg)
                .args([
                    "init",
                    "--database-url",
                    &env.url,
                    "--device-id",
                    &format!("dev{i}"),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for c in children {
        assert_ok(&c.wait_with_output().unwrap());
    }
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    let want: Vec<i64> = restic_fleet::store::db::MIGRATOR
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, want);
    assert!(want.len() >= 4);
    let devices: i64 = sqlx::query_scalar("SELECT count(*) FROM devices")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(devices, 20);
    // Default settings inserted exactly once.
    let dup: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT key FROM settings WHERE device_id IS NULL GROUP BY key HAVING count(*) > 1) d",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(dup, 0);
}

#[tokio::test]
async fn schema_matches_the_seed() {
    let env = Env::enrolled().await;
    for t in TABLES {
        let comment: Option<String> =
            sqlx::query_scalar("SELECT obj_description($1::regclass, 'pg_class')")
                .bind(t)
                .fetch_one(&env.pool)
                .await
                .unwrap();
        assert!(comment.is_some(), "table {t} has its comment");
    }
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public'")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    for idx in [
        "idx_devices_enabled",
        "idx_devices_last_seen",
        "idx_backup_jobs_device",
        "idx_backup_jobs_enabled",
        "idx_backup_jobs_origin",
        "idx_backup_jobs_account",
        "idx_schedules_enabled",
        "idx_schedules_next_run",
        "idx_schedules_job",
        "idx_runs_job",
        "idx_runs_device",
        "idx_runs_start_time",
        "idx_runs_status",
        "idx_runs_job_status",
        "idx_runs_device_start",
        "idx_settings_device",
        "idx_settings_key",
    ] {
        assert!(indexes.iter().any(|i| i == idx), "index {idx} missing");
    }
    let settings: Vec<(String, String)> =
        sqlx::query_as("SELECT key, value FROM settings WHERE device_id IS NULL ORDER BY key")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    let get = |k: &str| {
        settings
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("sync_interval_seconds"), Some("300"));
    assert_eq!(get("max_concurrent_backups"), Some("1"));
    assert_eq!(get("run_retention_days"), Some("90"));
    assert_eq!(get("repository_url"), Some(""));
    assert_eq!(get("schedule_jitter_seconds"), Some("0"));
    // Constraints hold.
    sqlx::query(
        "INSERT INTO backup_jobs (device_id, name, source_paths) VALUES ($1, 'j', ARRAY['/x'])",
    )
    .bind(&env.device)
    .execute(&env.pool)
    .await
    .unwrap();
    let bad_status = sqlx::query(
        "INSERT INTO runs (job_id, device_id, start_time, status) SELECT id, device_id, NOW(), 'skipped' FROM backup_jobs",
    )
    .execute(&env.pool)
    .await;
    assert!(bad_status.is_err(), "check_status rejects unknown statuses");
    let bad_sched = sqlx::query(
        "INSERT INTO schedules (job_id, schedule_type) SELECT id, 'cron' FROM backup_jobs",
    )
    .execute(&env.pool)
    .await;
    assert!(
        bad_sched.is_err(),
        "check_cron_expression rejects a cron schedule without expression"
    );
    let dup = sqlx::query(
        "INSERT INTO backup_jobs (device_id, name, source_paths) VALUES ($1, 'j', ARRAY['/y'])",
    )
    .bind(&env.device)
    .execute(&env.pool)
    .await;
    assert!(dup.is_err(), "UNIQUE (device_id, name)");
    // Views answer.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM job_summary")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM latest_runs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

async fn create_client_role(env: &Env, role: &str) {
    sqlx::query(&format!("CREATE ROLE {role} LOGIN PASSWORD 'pw'"))
        .execute(&env.pool)
        .await
        .unwrap();
    for stmt in [
        format!("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"),
        format!("GRANT CONNECT ON DATABASE {} TO {role}", env.db),
    ] {
        sqlx::query(&stmt).execute(&env.pool).await.unwrap();
    }
    // Row-level security (migration 006) shows a role only the rows of its device.
    sqlx::query("INSERT INTO device_roles (device_id, role_name) VALUES ($1, $2)")
        .bind(&env.device)
        .bind(role)
        .execute(&env.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_client_role_works_on_a_current_schema_and_explains_an_old_one() {
    let env = Env::with_repo().await;
    let role = format!("client_{}", &env.db[3..15]);
    create_client_role(&env, &role).await;
    let client_url = url_with_user(&env.db, &role, "pw");
    let src = env.make_source("src", 1);
    let job = env.add_job("docs", &[&src]).await;
    let out = env
        .cmd()
        .env("DATABASE_URL", &client_url)
        .args(["run", &job.to_string()])
        .output()
        .unwrap();
    assert_ok(&out);

    // Undo migration 4 (as admin): the client may not migrate, and says so.
    sqlx::query("DROP INDEX idx_settings_global_key")
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 4")
        .execute(&env.pool)
        .await
        .unwrap();
    let out = env
        .cmd()
        .env("DATABASE_URL", &client_url)
        .args(["run", &job.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("migration(s) 4 missing")
            && err.contains(&format!(
                "needs version {}",
                restic_fleet::store::db::latest_version()
            ))
            && err.contains("restic-fleet db migrate"),
        "{err}"
    );
    // It names who may apply it: the tables' owner (not backup_admin, which may not alter them).
    let owner: String = sqlx::query_scalar(
        "SELECT tableowner::text FROM pg_tables WHERE tablename = 'backup_jobs'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(
        err.contains(&format!(
            "the role that owns the tables, {owner:?}, or a superuser"
        )) && !err.contains("backup_admin"),
        "{err}"
    );
    // The admin applies it.
    let out = env
        .cmd()
        .args(["db", "migrate", "--database-url", &env.url])
        .output()
        .unwrap();
    assert_ok(&out);
    let out = env
        .cmd()
        .env("DATABASE_URL", &client_url)
        .args(["run", &job.to_string()])
        .output()
        .unwrap();
    assert_ok(&out);
}

#[tokio::test]
async fn init_writes_a_private_config_and_is_safe_to_repeat() {
    let env = Env::empty().await;
    let out = env
        .cmd()
        .args([
            "init",
            "--database-url",
            &env.url,
            "--device-id",
            "lap",
            "--name",
            "Laptop",
        ])
        .output()
        .unwrap();
    assert_ok(&out);
    let text = std::fs::read_to_string(env.config_path()).unwrap();
    assert!(text.contains("device_id = \"lap\""));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(env.config_path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let (name, platform, meta): (String, String, serde_json::Value) =
        sqlx::query_as("SELECT name, platform, metadata FROM devices WHERE id = 'lap'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(name, "Laptop");
    assert_eq!(platform, "linux");
    assert_eq!(meta["client_version"], env!("CARGO_PKG_VERSION"));
    // Again, without --name: the name is kept, nothing duplicated.
    let out = env
        .cmd()
        .args([
            "init",
            "--database-url",
            &env.url,
            "--device-id",
            "lap",
            "--json",
        ])
        .output()
        .unwrap();
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["created"], false);
    assert_eq!(report["device_name"], "Laptop");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM devices")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn an_unreachable_database_is_one_clear_sentence() {
    let env = Env::empty().await;
    let out = env
        .cmd()
        .args([
            "init",
            "--database-url",
            "postgres://u:hunter2@127.0.0.1:1/x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot connect to the database at postgres://u:***@127.0.0.1:1/x"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
    assert!(
        !env.config_path().exists(),
        "no config is written for a database that does not work"
    );

    let out = env
        .cmd()
        .args(["run", &uuid::Uuid::new_v4().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("restic-fleet init"),
        "{}",
        stderr(&out)
    );
}
