//! One machine cannot harm another: two enrolled devices with their own database roles, every
//! forbidden action attempted through the CLI and through `psql` with one device's credentials
//! (and refused, the database unchanged), every allowed action shown to work; viewers cannot
//! read secrets; restic arguments are checked where written and where used.
//!
//! Roles are cluster-wide and tests run in parallel: device ids (and so device role names) are
//! unique per test, and `db roles` is always given the same passwords as tests/admin_roles.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

const ADMIN_PW: &str = "admin-pw";
const VIEWER_PW: &str = "viewer-pw";

/// `db roles` with the shared test passwords.
fn make_roles(env: &Env) {
    let admin = env.dir.path().join("admin.pw");
    let viewer = env.dir.path().join("viewer.pw");
    std::fs::write(&admin, format!("{ADMIN_PW}\n")).unwrap();
    std::fs::write(&viewer, format!("{VIEWER_PW}\n")).unwrap();
    let out = env
        .cmd()
        .args(["db", "roles", "--database-url", &env.url])
        .arg("--admin-password-file")
        .arg(&admin)
        .arg("--viewer-password-file")
        .arg(&viewer)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&out);
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// An enrolled device: its id, role, database URL and its own config file.
struct Device {
    id: String,
    role: String,
    url: String,
    config: PathBuf,
}

/// `device enroll ID --platform linux --json` as `admin_url`, then `init` on "the machine"
/// (its own config file) with the printed URL.
fn enroll(env: &Env, admin_url: &str, id: &str) -> Device {
    let out = env
        .cmd()
        .env("DATABASE_URL", admin_url)
        .args(["device", "enroll", id, "--platform", "linux", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["device_id"], id);
    let dev = Device {
        id: id.to_string(),
        role: v["role"].as_str().unwrap().to_string(),
        url: v["database_url"].as_str().unwrap().to_string(),
        config: env.dir.path().join(format!("{id}.toml")),
    };
    assert!(dev.url.contains(&dev.role), "{}", dev.url);
    let out = as_device(env, &dev)
        .args(["init", "--database-url", &dev.url, "--device-id", id])
        .output()
        .unwrap();
    assert_ok(&out);
    dev
}

/// The binary on `dev`'s machine: its config, nothing else.
fn as_device(env: &Env, dev: &Device) -> Command {
    let mut c = env.cmd();
    c.env("RESTIC_FLEET_CONFIG", &dev.config)
        .stdin(Stdio::null());
    c
}

/// The binary with `url` as DATABASE_URL (management commands).
fn with_url(env: &Env, url: &str, args: &[&str]) -> Output {
    env.cmd()
        .env("DATABASE_URL", url)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `psql URL -c SQL`: (succeeded, stdout + stderr).
fn psql(url: &str, sql: &str) -> (bool, String) {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null())
        .output()
        .expect("psql on PATH");
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

/// Everything a device could try to change, as one text (the oracle that nothing changed).
async fn fleet_state(env: &Env) -> String {
    sqlx::query_scalar(
        "SELECT concat_ws(E'\\n', \
           (SELECT string_agg(row_to_json(d)::text, E'\\n' ORDER BY id) FROM devices d), \
           (SELECT string_agg(row_to_json(j)::text, E'\\n' ORDER BY id) FROM backup_jobs j), \
           (SELECT string_agg(row_to_json(s)::text, E'\\n' ORDER BY id) FROM schedules s), \
           (SELECT string_agg(row_to_json(r)::text, E'\\n' ORDER BY id) FROM runs r), \
           (SELECT string_agg(row_to_json(t)::text, E'\\n' ORDER BY id) FROM settings t), \
           (SELECT string_agg(row_to_json(x)::text, E'\\n' ORDER BY device_id) FROM device_roles x))",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

async fn add_job_for(env: &Env, device: &str, name: &str, path: &Path) -> uuid::Uuid {
    sqlx::query_scalar(
        "INSERT INTO backup_jobs (device_id, name, source_paths) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(device)
    .bind(name)
    .bind(vec![path.to_string_lossy().into_owned()])
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

fn fake_systemctl(env: &Env) -> PathBuf {
    fake_tool(env, "systemctl", "").0
}

#[tokio::test]
async fn a_device_role_reaches_only_its_own_rows() {
    let env = Env::with_repo().await;
    make_roles(&env);
    let a = enroll(&env, &env.url, &unique("sec-a"));
    // backup_admin enrols too (CREATEROLE from db roles).
    let admin = url_with_user(&env.db, "backup_admin", ADMIN_PW);
    let b = enroll(&env, &admin, &unique("sec-b"));
    let src_a = env.make_source("src-a", 2);
    let src_b = env.make_source("src-b", 2);
    let job_a = add_job_for(&env, &a.id, "home", &src_a).await;
    let job_b = add_job_for(&env, &b.id, "home", &src_b).await;
    let sched_a = add_interval(&env, job_a, 3600).await;
    let sched_b = add_interval(&env, job_b, 3600).await;
    sqlx::query(
        "INSERT INTO settings (device_id, key, value) VALUES ($1, 'b_only', 'b'), ($2, 'a_only', 'a')",
    )
    .bind(&b.id)
    .bind(&a.id)
    .execute(&env.pool)
    .await
    .unwrap();
    let b_run: i32 = sqlx::query_scalar(
        "INSERT INTO runs (job_id, device_id, start_time, status) VALUES ($1, $2, NOW(), 'failed') \
         RETURNING id",
    )
    .bind(job_b)
    .bind(&b.id)
    .fetch_one(&env.pool)
    .await
    .unwrap();

    // ---- Allowed, through the CLI: run, sync, init (again), status of its own device. ----
    let out = as_device(&env, &a)
        .args(["run", &job_a.to_string(), "--json"])
        .output()
        .unwrap();
    assert_ok(&out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "success");
    let last: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_run_at FROM schedules WHERE id = $1")
            .bind(sched_a)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(
        last.is_some(),
        "run updated its schedule as the device role"
    );
    let bin = fake_systemctl(&env);
    let out = as_device(&env, &a)
        .env("PATH", path_with(&bin))
        .args(["sync", "--json", "--unit-dir"])
        .arg(env.dir.path().join("units-a"))
        .output()
        .unwrap();
    assert_ok(&out);
    let seen: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_seen FROM devices WHERE id = $1")
            .bind(&a.id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(seen.is_some(), "sync heartbeated as the device role");
    let out = as_device(&env, &a)
        .args([
            "init",
            "--database-url",
            &a.url,
            "--device-id",
            &a.id,
            "--name",
            "renamed",
        ])
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(stdout(&out).contains("updated device"), "{}", stdout(&out));
    let out = as_device(&env, &a)
        .args(["status", "--device", &a.id, "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["jobs"].as_array().unwrap().len(), 1, "{st}");
    assert_eq!(st["jobs"][0]["verdict"], "ok");
    // Reads of its own rows through the management commands.
    let out = with_url(&env, &a.url, &["job", "list", "--json"]);
    assert_ok(&out);
    let jobs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        jobs.as_array().unwrap().len(),
        1,
        "only its own job: {jobs}"
    );
    let out = with_url(
        &env,
        &a.url,
        &["settings", "get", "a_only", "--device", &a.id],
    );
    assert_ok(&out);
    let out = with_url(&env, &a.url, &["device", "list", "--json"]);
    assert_ok(&out);
    let devices: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(devices.as_array().unwrap().len(), 1, "{devices}");
    assert_eq!(devices[0]["id"], a.id.as_str());

    // ---- Allowed, through psql. ----
    let allowed = [
        ("SELECT fleet_current_device()", Some(a.id.clone())),
        ("SELECT count(*) FROM devices", Some("1".into())),
        ("SELECT count(*) FROM backup_jobs", Some("1".into())),
        ("SELECT count(*) FROM schedules", Some("1".into())),
        (
            "SELECT count(*) FROM settings WHERE device_id IS NULL AND key = 'repository_password'",
            Some("1".into()),
        ),
        (
            "SELECT count(*) FROM settings WHERE device_id IS NULL AND key = 'repository_url' \
             AND value <> ''",
            Some("1".into()),
        ),
        (
            "SELECT count(*) FROM settings WHERE device_id IS NOT NULL",
            Some("1".into()),
        ),
        ("SELECT count(*) FROM job_summary", Some("1".into())),
        ("SELECT count(*) FROM latest_runs", Some("1".into())),
        (
            "UPDATE devices SET last_seen = NOW(), hostname = 'h', metadata = '{\"x\":1}' \
             WHERE id = current_setting('fleet.me')",
            None,
        ),
        (
            "UPDATE schedules SET last_run_at = NOW(), next_run_at = NOW() + INTERVAL '1 hour'",
            None,
        ),
        (
            "INSERT INTO runs (job_id, device_id, start_time, status, metadata) \
             SELECT id, device_id, NOW(), 'running', '{\"k\":1}' FROM backup_jobs",
            None,
        ),
        (
            "UPDATE runs SET status = 'failed', end_time = NOW() WHERE status = 'running'",
            None,
        ),
    ];
    for (sql, want) in allowed {
        let sql = format!("SET fleet.me = '{}'; {sql}", a.id);
        let (ok, text) = psql(&a.url, &sql);
        assert!(ok, "allowed as a device: {sql}\n{text}");
        if let Some(w) = want {
            assert_eq!(text.trim(), w, "{sql}");
        }
    }
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runs WHERE device_id = $1 AND status = 'failed' AND end_time IS NOT NULL",
    )
    .bind(&a.id)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(n, 1, "the device inserted and closed a run of its own");

    // ---- Forbidden, through the CLI: each fails and changes nothing. ----
    let before = fleet_state(&env).await;
    let (jb, ja) = (job_b.to_string(), job_a.to_string());
    let (sa, sb) = (sched_a.to_string(), sched_b.to_string());
    let src = src_a.to_str().unwrap();
    let forbidden_cli: Vec<Vec<&str>> = vec![
        vec!["job", "edit", &jb, "--description", "x"],
        vec!["job", "edit", &jb, "--path", src],
        vec!["job", "edit", &ja, "--description", "x"],
        vec![
            "job",
            "edit",
            &ja,
            "--restic-args",
            "[\"--exclude-caches\"]",
        ],
        vec!["job", "edit", &ja, "--device", &b.id],
        vec!["job", "disable", &jb],
        vec!["job", "disable", &ja],
        vec!["job", "enable", &jb],
        vec!["job", "rm", &jb, "-y"],
        vec![
            "job", "add", "--device", &a.id, "--name", "new", "--path", src,
        ],
        vec!["device", "disable", &b.id],
        vec!["device", "disable", &a.id],
        vec!["device", "enable", &a.id],
        vec!["device", "add", "intruder", "--platform", "linux"],
        vec!["device", "enroll", "intruder", "--platform", "linux"],
        vec!["device", "rm", &b.id, "-y"],
        vec!["device", "rm", &a.id, "-y"],
        vec!["settings", "set", "repository_url", "/elsewhere"],
        vec!["settings", "set", "timezone", "UTC", "--device", &a.id],
        vec!["settings", "unset", "b_only", "--device", &b.id, "-y"],
        vec!["schedule", "disable", &sb],
        vec!["schedule", "enable", &sb],
        vec!["schedule", "disable", &sa],
        vec!["schedule", "add", &ja, "--interval", "60"],
        vec!["schedule", "rm", &sb, "-y"],
        vec!["cleanup"],
        vec!["run", &jb],
    ];
    for args in &forbidden_cli {
        let out = if args[0] == "run" {
            as_device(&env, &a).args(args).output().unwrap()
        } else {
            with_url(&env, &a.url, args)
        };
        assert_ne!(
            out.status.code(),
            Some(0),
            "{args:?} must be refused for a device\n{}",
            stdout(&out)
        );
        assert!(!stderr(&out).trim().is_empty(), "{args:?} says why");
    }
    // Reads of another device's rows find nothing.
    for args in [
        vec!["device", "show", b.id.as_str()],
        vec!["job", "show", &jb],
        vec!["status", "--device", &b.id],
        vec!["settings", "get", "b_only", "--device", &b.id],
    ] {
        let out = with_url(&env, &a.url, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let out = with_url(&env, &a.url, &["runs", "list", "--json"]);
    assert_ok(&out);
    assert!(!stdout(&out).contains(&b.id), "{}", stdout(&out));
    assert_eq!(fleet_state(&env).await, before, "the CLI changed something");

    // ---- Forbidden, through psql with the device's credentials. ----
    let forbidden_sql = [
        format!("UPDATE runs SET status = 'success' WHERE id = {b_run}"),
        format!(
            "UPDATE runs SET status = 'success' WHERE device_id = '{}'",
            b.id
        ),
        format!("UPDATE devices SET last_seen = NOW() WHERE id = '{}'", b.id),
        format!("UPDATE devices SET enabled = false WHERE id = '{}'", b.id),
        format!("UPDATE devices SET enabled = false WHERE id = '{}'", a.id),
        format!("UPDATE devices SET description = 'x' WHERE id = '{}'", a.id),
        format!("UPDATE devices SET id = 'moved' WHERE id = '{}'", a.id),
        format!("UPDATE schedules SET enabled = false WHERE id = {sched_b}"),
        format!("UPDATE schedules SET enabled = false WHERE id = {sched_a}"),
        format!("UPDATE schedules SET enabled = true, interval_seconds = 1 WHERE id = {sched_b}"),
        format!(
            "UPDATE backup_jobs SET device_id = '{}' WHERE id = '{job_b}'",
            a.id
        ),
        format!("UPDATE schedules SET cron_expression = '* * * * *' WHERE id = {sched_a}"),
        format!("UPDATE schedules SET next_run_at = NOW() WHERE id = {sched_b}"),
        format!("UPDATE backup_jobs SET restic_args = '[\"--repo\",\"/x\"]' WHERE id = '{job_a}'"),
        format!("UPDATE backup_jobs SET source_paths = '{{/etc}}' WHERE id = '{job_b}'"),
        format!("UPDATE backup_jobs SET enabled = false WHERE id = '{job_b}'"),
        format!(
            "INSERT INTO backup_jobs (device_id, name, source_paths) VALUES ('{}', 'x', '{{/}}')",
            a.id
        ),
        "INSERT INTO devices (id, name, platform) VALUES ('intruder', 'x', 'linux')".into(),
        format!(
            "INSERT INTO schedules (job_id, schedule_type, interval_seconds) VALUES ('{job_a}', 'interval', 60)"
        ),
        format!(
            "INSERT INTO runs (job_id, device_id, start_time, status) VALUES ('{job_b}', '{}', NOW(), 'success')",
            b.id
        ),
        format!(
            "INSERT INTO runs (job_id, device_id, start_time, status) VALUES ('{job_b}', '{}', NOW(), 'success')",
            a.id
        ),
        format!(
            "UPDATE runs SET device_id = '{}' WHERE device_id = '{}'",
            b.id, a.id
        ),
        format!(
            "UPDATE runs SET job_id = '{job_b}' WHERE device_id = '{}'",
            a.id
        ),
        "UPDATE settings SET value = '/elsewhere' WHERE key = 'repository_url'".into(),
        "INSERT INTO settings (device_id, key, value) VALUES (NULL, 'x', 'y')".into(),
        format!(
            "INSERT INTO settings (device_id, key, value) VALUES ('{}', 'timezone', 'UTC')",
            a.id
        ),
        "DELETE FROM runs".into(),
        "DELETE FROM settings".into(),
        format!("DELETE FROM devices WHERE id = '{}'", a.id),
        format!("DELETE FROM backup_jobs WHERE id = '{job_a}'"),
        format!("DELETE FROM schedules WHERE id = {sched_a}"),
        "TRUNCATE runs".into(),
        "INSERT INTO device_roles (device_id, role_name) VALUES ('x', 'y')".into(),
        format!("UPDATE device_roles SET device_id = '{}'", b.id),
        "CREATE TABLE intruder (x int)".into(),
        "ALTER TABLE runs DISABLE ROW LEVEL SECURITY".into(),
        "UPDATE _sqlx_migrations SET success = false".into(),
    ];
    for sql in &forbidden_sql {
        let (ok, text) = psql(&a.url, sql);
        // Refused outright, or (rows hidden by row-level security) nothing matched.
        assert!(
            !ok || text.trim().is_empty(),
            "forbidden for a device: {sql}\n{text}"
        );
    }
    let forbidden_reads = [
        format!("SELECT count(*) FROM devices WHERE id = '{}'", b.id),
        format!(
            "SELECT count(*) FROM backup_jobs WHERE device_id = '{}'",
            b.id
        ),
        format!("SELECT count(*) FROM schedules WHERE job_id = '{job_b}'"),
        format!("SELECT count(*) FROM runs WHERE device_id = '{}'", b.id),
        format!("SELECT count(*) FROM settings WHERE device_id = '{}'", b.id),
        format!(
            "SELECT count(*) FROM job_summary WHERE device_id = '{}'",
            b.id
        ),
        format!(
            "SELECT count(*) FROM latest_runs WHERE device_id = '{}'",
            b.id
        ),
    ];
    for sql in &forbidden_reads {
        let (ok, text) = psql(&a.url, sql);
        assert!(ok, "{sql}: {text}");
        assert_eq!(
            text.trim(),
            "0",
            "a device reads no other device's rows: {sql}"
        );
    }
    let (ok, _) = psql(&a.url, "SELECT * FROM device_roles");
    assert!(!ok, "device_roles is not readable by devices");
    let (ok, text) = psql(
        &a.url,
        "UPDATE runs SET status = 'success' WHERE id = 999999",
    );
    assert!(
        ok && text.trim().is_empty(),
        "psql prints nothing for UPDATE 0: {text}"
    );
    assert_eq!(fleet_state(&env).await, before, "psql changed something");

    // The other device still works after all this.
    let out = as_device(&env, &b)
        .args(["run", &job_b.to_string()])
        .output()
        .unwrap();
    assert_ok(&out);
}

#[tokio::test]
async fn enrolment_rotates_and_rm_drops_the_login() {
    let env = Env::with_repo().await;
    make_roles(&env);
    let a = enroll(&env, &env.url, &unique("rot"));
    let (ok, text) = psql(&a.url, "SELECT fleet_current_device()");
    assert!(ok && text.trim() == a.id, "{text}");
    // A wrong password is refused (the cluster checks passwords of every role but postgres).
    let pw = a.url.split(':').nth(2).unwrap().split('@').next().unwrap();
    let wrong = a.url.replace(pw, "wrong");
    let (ok, text) = psql(&wrong, "SELECT 1");
    assert!(!ok, "a wrong password must not log in: {text}");

    // Rotating: the old password stops working, the new one works, the role stays.
    let out = with_url(&env, &env.url, &["device", "enroll", &a.id]);
    assert_ok(&out);
    let human = stdout(&out);
    assert!(human.contains("rotated"), "{human}");
    let line = human
        .lines()
        .find(|l| l.trim_start().starts_with("restic-fleet init"))
        .unwrap_or_else(|| panic!("no init line: {human}"));
    assert_eq!(
        line.trim(),
        format!("restic-fleet init --device-id {} --database-url -", a.id)
    );
    let new_url = human
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("postgres://"))
        .unwrap_or_else(|| panic!("no URL: {human}"))
        .to_string();
    assert_ne!(new_url, a.url);
    // The URL is given on standard input, never as an argument (the process list, history).
    let config = env.dir.path().join("rotated.toml");
    let mut init = env.cmd();
    init.env("RESTIC_FLEET_CONFIG", &config);
    let out = with_stdin_on(
        init,
        &["init", "--device-id", &a.id, "--database-url", "-"],
        &format!("{new_url}\n"),
    );
    assert_ok(&out);
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.contains(&new_url), "{written}");
    assert!(new_url.contains(&a.role), "{new_url}");
    let (ok, text) = psql(&a.url, "SELECT 1");
    assert!(!ok, "the old password still works: {text}");
    assert!(text.contains("password authentication failed"), "{text}");
    let (ok, text) = psql(&new_url, "SELECT fleet_current_device()");
    assert!(ok && text.trim() == a.id, "{text}");

    // Enrolling an unknown device without --platform is a usage error; nothing is created.
    let ghost = unique("ghost");
    let out = with_url(&env, &env.url, &["device", "enroll", &ghost]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--platform"), "{}", stderr(&out));
    // The printed line is quoted for the shell.
    let odd = format!("{};id", unique("q"));
    let out = with_url(
        &env,
        &env.url,
        &["device", "enroll", &odd, "--platform", "linux"],
    );
    assert_ok(&out);
    assert!(
        stdout(&out).contains(&format!("--device-id '{odd}'")),
        "{}",
        stdout(&out)
    );
    let odd_role: String =
        sqlx::query_scalar("SELECT role_name FROM device_roles WHERE device_id = $1")
            .bind(&odd)
            .fetch_one(&env.pool)
            .await
            .unwrap();

    // device rm (as backup_admin) drops the role: it can no longer log in, and pg_roles has
    // no trace.
    let admin = url_with_user(&env.db, "backup_admin", ADMIN_PW);
    let out = with_url(&env, &admin, &["device", "rm", &a.id, "-y"]);
    assert_ok(&out);
    assert!(stdout(&out).contains(&a.role), "{}", stdout(&out));
    let out = with_url(&env, &env.url, &["device", "rm", &odd, "-y"]);
    assert_ok(&out);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)")
        .bind(vec![a.role.clone(), odd_role])
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let (ok, _) = psql(&new_url, "SELECT 1");
    assert!(!ok, "a removed device can still log in");

    // An init with a device's URL for another device id is refused with a sentence.
    let b = enroll(&env, &env.url, &unique("other"));
    let out = as_device(&env, &b)
        .args([
            "init",
            "--database-url",
            &b.url,
            "--device-id",
            "someone-else",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("registers only its own device"),
        "{}",
        stderr(&out)
    );
}

/// backup_admin has CREATEROLE but is no superuser: rotating a device's password as it works
/// (PostgreSQL refuses a non-superuser any change to the superuser attribute, even NOSUPERUSER).
#[tokio::test]
async fn backup_admin_rotates_a_device_password() {
    let env = Env::with_repo().await;
    make_roles(&env);
    let admin = url_with_user(&env.db, "backup_admin", ADMIN_PW);
    let a = enroll(&env, &admin, &unique("rot-admin"));
    let out = with_url(&env, &admin, &["device", "enroll", &a.id, "--json"]);
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rotated"], true, "{v}");
    let new_url = v["database_url"].as_str().unwrap();
    assert_ne!(new_url, a.url);
    let (ok, text) = psql(&a.url, "SELECT 1");
    assert!(!ok, "the old password still works: {text}");
    let (ok, text) = psql(new_url, "SELECT fleet_current_device()");
    assert!(ok && text.trim() == a.id, "{text}");
    let attrs: (bool, bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = $1",
    )
    .bind(&a.role)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(attrs, (false, false, false, true));
}

#[tokio::test]
async fn viewers_read_everything_but_secrets() {
    let env = Env::with_repo().await;
    make_roles(&env);
    let viewer = url_with_user(&env.db, "backup_viewer", VIEWER_PW);
    let admin = url_with_user(&env.db, "backup_admin", ADMIN_PW);
    let out = with_stdin(
        &env,
        &[
            "settings",
            "set",
            "repository_environment",
            "-",
            "--database-url",
            &env.url,
        ],
        "AWS_SECRET_ACCESS_KEY=hunter2\n",
    );
    assert_ok(&out);
    // A credential inside the repository URL is a secret too (migration 012).
    env.set_setting("repository_url", "rest:https://user:s3cret@host/repo")
        .await;

    let out = with_url(
        &env,
        &viewer,
        &["settings", "get", "repository_password", "--show-secrets"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("may not read secret settings") && !err.contains(PASSWORD),
        "{err}"
    );
    let out = with_url(
        &env,
        &viewer,
        &["settings", "list", "--json", "--show-secrets"],
    );
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        !text.contains(PASSWORD) && !text.contains("hunter2") && !text.contains("s3cret"),
        "{text}"
    );
    assert!(text.contains("sync_interval_seconds"), "{text}");
    // JSON marks what is hidden rather than leaving it out.
    let listed: Vec<Value> = serde_json::from_str(&text).unwrap();
    let entry = |key: &str| listed.iter().find(|v| v["key"] == key).cloned();
    let hidden = entry("repository_password").unwrap_or_else(|| panic!("{text}"));
    assert_eq!(hidden["hidden"], true, "{text}");
    assert!(hidden["value"].is_null(), "{text}");
    assert_eq!(entry("sync_interval_seconds").unwrap()["hidden"], false);
    // The table says what is hidden rather than leaving it out.
    let out = with_url(&env, &viewer, &["settings", "list", "--show-secrets"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        !text.contains("s3cret") && !text.contains(PASSWORD),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("repository_url"))
        .unwrap_or_else(|| panic!("no repository_url line: {text}"));
    assert!(line.contains("(hidden)"), "{text}");
    let out = with_url(&env, &viewer, &["settings", "get", "repository_url"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("may not read secret settings"),
        "{}",
        stderr(&out)
    );
    let (ok, text) = psql(
        &viewer,
        "SELECT count(*) FROM settings WHERE key IN ('repository_password', \
         'repository_environment', 'repository_url')",
    );
    assert!(ok && text.trim() == "0", "{text}");
    for sql in [
        "SELECT string_agg(value, ',') FROM settings",
        "SELECT string_agg(row_to_json(s)::text, ',') FROM settings s",
    ] {
        let (ok, text) = psql(&viewer, sql);
        assert!(
            ok && !text.contains(PASSWORD) && !text.contains("hunter2") && !text.contains("s3cret"),
            "{sql}: {text}"
        );
    }
    // Viewers still read everything else, and write nothing.
    let (ok, text) = psql(&viewer, "SELECT count(*) FROM devices");
    assert!(ok && text.trim() == "1", "{text}");
    let (ok, _) = psql(
        &viewer,
        "UPDATE settings SET value = 'x' WHERE key = 'timezone'",
    );
    assert!(!ok);
    assert_eq!(with_url(&env, &viewer, &["status"]).status.code(), Some(0));

    // The admin reads secrets when asked, masked otherwise.
    let out = with_url(
        &env,
        &admin,
        &["settings", "get", "repository_password", "--show-secrets"],
    );
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), PASSWORD);
    let out = with_url(&env, &admin, &["settings", "get", "repository_environment"]);
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), "***");
    let (ok, text) = psql(
        &admin,
        "SELECT value FROM settings WHERE key = 'repository_url' AND device_id IS NULL",
    );
    assert!(
        ok && text.trim() == "rest:https://user:s3cret@host/repo",
        "{text}"
    );
    let out = with_url(&env, &admin, &["settings", "get", "repository_url"]);
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), "rest:https://user:***@host/repo");
    // A URL with a password stays off the command line; one without may be given there.
    let out = with_url(
        &env,
        &admin,
        &[
            "settings",
            "set",
            "repository_url",
            "rest:https://u:typed@h/",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("holds a password") && !stderr(&out).contains("typed"),
        "{}",
        stderr(&out)
    );
    assert_ok(&with_url(
        &env,
        &admin,
        &[
            "settings",
            "set",
            "repository_url",
            "sftp:backup@host:/srv/restic",
        ],
    ));

    // One list of secret keys, read by the client from the database.
    let keys: Vec<String> = sqlx::query_scalar("SELECT unnest(fleet_secret_setting_keys())")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(
        keys,
        [
            "repository_password",
            "repository_environment",
            "notify_webhook_url",
            "notify_ntfy_url",
            "repository_url"
        ]
    );
}

#[tokio::test]
async fn settings_never_show_or_take_credentials_in_plain_sight() {
    let env = Env::with_repo().await;
    // A secret given as an argument is refused with the hint to use `-`, and nothing changes.
    let out = with_url(
        &env,
        &env.url,
        &["settings", "set", "repository_password", "typed-in-clear"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("standard input"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("typed-in-clear"), "{}", stderr(&out));
    let pw: String = sqlx::query_scalar(
        "SELECT value FROM settings WHERE key = 'repository_password' AND device_id IS NULL",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(pw, PASSWORD);

    // settings list masks a credential inside repository_url, table and --json.
    env.set_setting("repository_url", "rest:https://user:s3cret@host/")
        .await;
    for args in [
        vec!["settings", "list"],
        vec!["settings", "list", "--json"],
        vec!["settings", "get", "repository_url"],
    ] {
        let out = with_url(&env, &env.url, &args);
        assert_ok(&out);
        let text = stdout(&out);
        assert!(
            !text.contains("s3cret") && text.contains("rest:https://user:***@host/"),
            "{args:?}: {text}"
        );
    }
    let out = with_url(
        &env,
        &env.url,
        &["settings", "get", "repository_url", "--show-secrets"],
    );
    assert_eq!(stdout(&out).trim(), "rest:https://user:s3cret@host/");

    // device add refuses control characters in names; printed commands are quoted.
    let out = with_url(
        &env,
        &env.url,
        &[
            "device",
            "add",
            "ok-id",
            "--name",
            "evil\u{1b}[2Jname",
            "--platform",
            "linux",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("control characters"),
        "{}",
        stderr(&out)
    );
    let out = with_url(
        &env,
        &env.url,
        &["device", "add", "d;id", "--platform", "linux"],
    );
    assert_ok(&out);
    assert!(stdout(&out).contains("enroll 'd;id'"), "{}", stdout(&out));
}

#[tokio::test]
async fn restic_args_are_checked_when_written_and_when_run() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 2);
    let job = env.add_job("home", &[&src]).await;
    let j = job.to_string();
    let s = src.to_str().unwrap();
    let refused = [
        (
            r#"["--password-command","sh -c 'touch /tmp/pwned'"]"#,
            "--password-command",
        ),
        (r#"["-o","sftp.command=sh -c id"]"#, "sftp.command"),
        (r#"["--repo","/other"]"#, "--repo"),
        (r#"["--","/etc"]"#, "\"--\""),
        (r#"["--host","other"]"#, "--host"),
        (r#"["--files-from","/list"]"#, "--files-from"),
        (r#"["-o","rclone.program=/bin/sh"]"#, "rclone.program"),
    ];
    for (json, name) in refused {
        for args in [
            vec!["job", "edit", &j, "--restic-args", json],
            vec![
                "job",
                "add",
                "--device",
                &env.device,
                "--name",
                "n",
                "--path",
                s,
                "--restic-args",
                json,
            ],
        ] {
            let out = with_url(&env, &env.url, &args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(name), "{args:?}: {}", stderr(&out));
        }
    }
    let stored: Value = sqlx::query_scalar("SELECT restic_args FROM backup_jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(stored, serde_json::json!([]));
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM backup_jobs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    // Allowed tuning options are stored and used.
    let out = with_url(
        &env,
        &env.url,
        &[
            "job",
            "edit",
            &j,
            "--restic-args",
            r#"["--exclude-caches","-o","local.connections=2","--exclude-larger-than","1G"]"#,
        ],
    );
    assert_ok(&out);
    assert_ok(&env.cmd().args(["run", &j]).output().unwrap());

    // A row written with plain SQL that breaks the rule fails the run; restic never starts.
    let marker = env.dir.path().join("pwned");
    sqlx::query("UPDATE backup_jobs SET restic_args = $2 WHERE id = $1")
        .bind(job)
        .bind(serde_json::json!([
            "--password-command",
            format!("sh -c 'touch {}; echo {PASSWORD}'", marker.display())
        ]))
        .execute(&env.pool)
        .await
        .unwrap();
    let out = env.cmd().args(["run", &j]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains("restic argument \"--password-command\" is not allowed"),
        "{said}"
    );
    assert!(!marker.exists(), "restic ran the password command");
    let (status, msg): (String, Option<String>) = sqlx::query_as(
        "SELECT status, error_message FROM runs WHERE job_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(job)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(status, "failed");
    assert!(msg.unwrap_or_default().contains("not allowed"));
    sqlx::query("UPDATE backup_jobs SET restic_args = '[\"--\", \"/etc\"]' WHERE id = $1")
        .bind(job)
        .execute(&env.pool)
        .await
        .unwrap();
    let out = env.cmd().args(["run", &j]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // Exactly one snapshot: the allowed run's.
    let snaps = env.restic(&["snapshots", "--json"]);
    assert_ok(&snaps);
    let v: Value = serde_json::from_slice(&snaps.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn relica_migrate_rejects_what_the_cli_would_refuse() {
    let env = Env::enrolled().await;
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/relica/relica-account-info.json"
    );
    let text = std::fs::read_to_string(fixture).unwrap();
    // device1/Dokumenty gets a relative path; device1/home a name with an escape sequence.
    let text = text
        .replacen("\"/home/user/Dokumenty\"", "\"home/user/Dokumenty\"", 1)
        .replacen(
            "\"name\": \"device1/home\"",
            "\"name\": \"device1/\\u001b[2Jhome\"",
            1,
        );
    let file = env.dir.path().join("relica.json");
    std::fs::write(&file, text).unwrap();
    let out = env
        .cmd()
        .arg("relica-migrate")
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    assert_ok(&out);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let jobs = r["jobs"]["items"].as_array().unwrap();
    let rejected: Vec<&Value> = jobs
        .iter()
        .filter(|i| {
            i["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("rejected: "))
        })
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:#?}");
    assert!(
        rejected.iter().any(|i| i["reason"]
            .as_str()
            .unwrap()
            .contains("not an absolute linux path")),
        "{rejected:#?}"
    );
    assert!(
        rejected
            .iter()
            .any(|i| i["reason"].as_str().unwrap().contains("control characters")),
        "{rejected:#?}"
    );
    for i in &rejected {
        assert_eq!(i["action"], "skipped");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM backup_jobs WHERE id = $1::uuid")
            .bind(i["id"].as_str().unwrap())
            .fetch_one(&env.pool)
            .await
            .unwrap();
        assert_eq!(n, 0, "a rejected job was stored: {i}");
    }
    let bad: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM backup_jobs j JOIN devices d ON d.id = j.device_id \
         WHERE j.name ~ '[[:cntrl:]]' OR (d.platform = 'linux' \
           AND EXISTS (SELECT 1 FROM unnest(j.source_paths) p WHERE p NOT LIKE '/%'))",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(bad, 0);
}

/// The maintenance owner's role reads every job and retention policy (forget must know the
/// whole fleet's jobs), records its own steps, and still writes no job; another device's role
/// sees neither, and `maintain` there exits 4.
#[tokio::test]
async fn the_maintenance_owner_role_maintains_the_whole_fleet() {
    let env = Env::with_repo().await;
    make_roles(&env);
    let owner = enroll(&env, &env.url, &unique("own"));
    let other = enroll(&env, &env.url, &unique("oth"));
    let src_o = env.make_source("src-o", 2);
    let src_x = env.make_source("src-x", 2);
    let job_o = add_job_for(&env, &owner.id, "home", &src_o).await;
    let job_x = add_job_for(&env, &other.id, "home", &src_x).await;
    env.set_setting("maintenance_device", &owner.id).await;
    let x = job_x.to_string();
    assert_ok(&with_url(
        &env,
        &env.url,
        &["job", "edit", &x, "--keep-last", "1"],
    ));
    for _ in 0..2 {
        assert_ok(&as_device(&env, &other).args(["run", &x]).output().unwrap());
    }
    assert_ok(
        &as_device(&env, &owner)
            .args(["run", &job_o.to_string()])
            .output()
            .unwrap(),
    );

    // Another device sees no foreign job and no retention policy, and may not maintain.
    let (ok, text) = psql(
        &other.url,
        &format!("SELECT count(*) FROM backup_jobs WHERE id = '{job_o}'"),
    );
    assert!(ok && text.trim() == "0", "{text}");
    let (ok, text) = psql(&other.url, "SELECT count(*) FROM job_retention");
    assert!(ok && text.trim() == "0", "{text}");
    let out = as_device(&env, &other).arg("maintain").output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // Forced, it sees only its own jobs: the owner's snapshots are not reported as snapshots
    // of unknown jobs (with a `restic forget` hint), the search is skipped.
    let out = as_device(&env, &other)
        .args(["maintain", "--force", "--dry-run", "--json"])
        .output()
        .unwrap();
    assert_ok(&out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["unknown_job_snapshots"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );

    // The owner sees the other device's job and its policy, and maintains under its own role.
    let (ok, text) = psql(
        &owner.url,
        &format!("SELECT count(*) FROM job_retention WHERE job_id = '{job_x}'"),
    );
    assert!(ok && text.trim() == "1", "{text}");
    let out = as_device(&env, &owner)
        .args(["maintain", "--json"])
        .output()
        .unwrap();
    assert_ok(&out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let out = with_url(&env, &env.url, &["snapshots", "--job", &x, "--json"]);
    assert_ok(&out);
    let snaps: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snaps.as_array().map(Vec::len), Some(1), "{snaps}");
    let steps: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM maintenance_runs WHERE device_id = $1 AND status = 'success'",
    )
    .bind(&owner.id)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(steps, 4);

    // Reading the fleet's jobs gives the owner no right to change them.
    let (ok, text) = psql(
        &owner.url,
        &format!("UPDATE backup_jobs SET name = 'taken' WHERE id = '{job_x}'"),
    );
    assert!(!ok, "{text}");
    let (ok, text) = psql(
        &owner.url,
        &format!("DELETE FROM job_retention WHERE job_id = '{job_x}'"),
    );
    assert!(
        !ok || text.contains("DELETE 0") || text.trim().is_empty(),
        "{text}"
    );
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM job_retention WHERE job_id = $1")
        .bind(job_x)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(kept, 1);
}

/// `status` on a device reports what it can see and nothing else: an ordinary device its own
/// jobs and no maintenance (it cannot see the owner's row); the maintenance owner its own jobs
/// (not the fleet's, which it reads only to forget) and maintenance; both exit 0 when their
/// jobs are ok. An admin still sees every job and maintenance.
#[tokio::test]
async fn status_on_a_device_reports_its_own_jobs() {
    let env = Env::with_repo().await;
    make_roles(&env);
    let owner = enroll(&env, &env.url, &unique("st-own"));
    let other = enroll(&env, &env.url, &unique("st-oth"));
    let src_o = env.make_source("src-o", 2);
    let src_x = env.make_source("src-x", 2);
    let job_o = add_job_for(&env, &owner.id, "home", &src_o).await;
    let job_x = add_job_for(&env, &other.id, "home", &src_x).await;
    add_interval(&env, job_o, 3600).await;
    add_interval(&env, job_x, 3600).await;
    env.set_setting("maintenance_device", &owner.id).await;
    for (dev, job) in [(&owner, job_o), (&other, job_x)] {
        assert_ok(
            &as_device(&env, dev)
                .args(["run", &job.to_string()])
                .output()
                .unwrap(),
        );
    }
    sqlx::query("UPDATE devices SET last_seen = NOW() WHERE id = ANY($1)")
        .bind(vec![owner.id.clone(), other.id.clone()])
        .execute(&env.pool)
        .await
        .unwrap();

    for (dev, job, maintenance) in [(&other, job_x, false), (&owner, job_o, true)] {
        let out = as_device(&env, dev)
            .args(["status", "--json"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let jobs: Vec<&str> = report["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job_id"].as_str().unwrap())
            .collect();
        assert_eq!(jobs, vec![job.to_string()], "{report}");
        assert_eq!(
            report["devices"].as_array().map(Vec::len),
            Some(1),
            "{report}"
        );
        assert_eq!(report.get("maintenance").is_some(), maintenance, "{report}");
        let out = as_device(&env, dev).arg("status").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        let text = stdout(&out);
        assert_eq!(text.contains("maintenance:"), maintenance, "{text}");
        assert!(!text.contains("unknown_device"), "{text}");
    }
    let out = with_url(&env, &env.url, &["status", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["jobs"].as_array().map(Vec::len), Some(2), "{report}");
    assert_eq!(
        report["maintenance"]["owner"],
        owner.id.as_str(),
        "{report}"
    );
}

/// `snapshots` on a device lists that device's snapshots, not every device's (which it could
/// not name); an admin sees them all, or one device's with `--device`.
#[tokio::test]
async fn snapshots_on_a_device_are_its_own() {
    let env = Env::with_repo().await;
    make_roles(&env);
    let a = enroll(&env, &env.url, &unique("snap-a"));
    let b = enroll(&env, &env.url, &unique("snap-b"));
    for dev in [&a, &b] {
        let src = env.make_source(&format!("src-{}", dev.id), 1);
        let job = add_job_for(&env, &dev.id, "home", &src).await;
        let run = as_device(&env, dev)
            .args(["run", &job.to_string()])
            .output();
        assert_ok(&run.unwrap());
    }
    let hosts = |out: &Output| -> Vec<String> {
        assert_ok(out);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["hostname"].as_str().unwrap().to_string())
            .collect()
    };
    let out = as_device(&env, &a).args(["snapshots", "--json"]).output();
    assert_eq!(hosts(&out.unwrap()), vec![a.id.clone()]);
    let out = as_device(&env, &b).arg("snapshots").output().unwrap();
    assert_ok(&out);
    assert!(!stdout(&out).contains("no such job"), "{}", stdout(&out));
    assert!(stdout(&out).contains("1 snapshot(s)"), "{}", stdout(&out));
    let mut all = hosts(&with_url(&env, &env.url, &["snapshots", "--json"]));
    all.sort();
    let mut both = vec![a.id.clone(), b.id.clone()];
    both.sort();
    assert_eq!(all, both);
    let one = with_url(&env, &env.url, &["snapshots", "--device", &b.id, "--json"]);
    assert_eq!(hosts(&one), vec![b.id.clone()]);
}

/// A device role delivers its own spool: a run made while the database was unreachable is
/// recorded under row-level security and the column grants exactly like a live one, and moves
/// its schedule on.
#[tokio::test]
async fn a_device_role_runs_offline_and_delivers_its_spool() {
    let env = Env::with_repo().await;
    make_roles(&env);
    let a = enroll(&env, &env.url, &unique("spool"));
    let src = env.make_source("src-a", 2);
    let job = add_job_for(&env, &a.id, "home", &src).await;
    let sched = add_interval(&env, job, 3600).await;
    // sync (as the device) writes the local copy that an offline run needs.
    let bin = fake_systemctl(&env);
    let out = as_device(&env, &a)
        .env("PATH", path_with(&bin))
        .args(["sync", "--unit-dir"])
        .arg(env.dir.path().join("units-spool"))
        .output()
        .unwrap();
    assert_ok(&out);
    // The database is away: nobody listens on port 1.
    let out = as_device(&env, &a)
        .env("DATABASE_URL", "postgres://nobody:x@127.0.0.1:1/none")
        .args(["run", &job.to_string(), "--json"])
        .output()
        .unwrap();
    assert_ok(&out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["run_id"].is_null() && report["spooled"].is_string(),
        "{report}"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE job_id = $1")
        .bind(job)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    // Back: the device's own role delivers it.
    let out = as_device(&env, &a)
        .args(["spool", "deliver", "--json"])
        .output()
        .unwrap();
    assert_ok(&out);
    let (status, offline, client): (String, Option<bool>, Option<uuid::Uuid>) = sqlx::query_as(
        "SELECT status, (metadata->>'recorded_offline')::bool, client_run_id FROM runs \
         WHERE job_id = $1",
    )
    .bind(job)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(status, "success");
    assert_eq!(offline, Some(true));
    assert_eq!(
        client.map(|c| c.to_string()).as_deref(),
        report["client_run_id"].as_str()
    );
    let last: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_run_at FROM schedules WHERE id = $1")
            .bind(sched)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(last.is_some(), "the delivered run moved its schedule on");
}

/// The password of an enrolled device never reaches the server: with every statement logged,
/// the server log holds the SCRAM verifier `device enroll` computed (and that PostgreSQL
/// stored), never the password, which still logs in (`enroll` runs `init` with it).
#[tokio::test]
async fn enrolment_sends_postgresql_a_verifier_never_the_password() {
    let env = Env::enrolled().await;
    make_roles(&env);
    let log = StatementLog::start(&env).await;

    let dev = enroll(&env, &env.url, &unique("scram"));
    let rotated = with_url(&env, &env.url, &["device", "enroll", &dev.id, "--json"]);
    assert_ok(&rotated);
    let rotated: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    let password_of = |url: &str| {
        let creds = url.split("://").nth(1).unwrap().split('@').next().unwrap();
        creds.split(':').nth(1).unwrap().to_string()
    };
    let passwords = [
        password_of(&dev.url),
        password_of(rotated["database_url"].as_str().unwrap()),
    ];
    let stored: String = sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
        .bind(&dev.role)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");

    let text = log.since_start();
    assert!(
        text.contains(&stored),
        "the statements were logged, the verifier among them"
    );
    for p in &passwords {
        assert_eq!(p.len(), 64, "{p}");
        assert!(
            !text.contains(p.as_str()),
            "the password reached the server log"
        );
    }
}

/// The private cluster's server log (scripts/pg.sh: `server.log` beside the data directory),
/// with every statement of this test's database logged from now on.
struct StatementLog {
    path: PathBuf,
    from: usize,
}

impl StatementLog {
    async fn start(env: &Env) -> StatementLog {
        sqlx::query(&format!(
            "ALTER DATABASE {} SET log_statement = 'all'",
            env.db
        ))
        .execute(&env.pool)
        .await
        .unwrap();
        let data: String = sqlx::query_scalar("SHOW data_directory")
            .fetch_one(&env.pool)
            .await
            .unwrap();
        let path = Path::new(&data).parent().unwrap().join("server.log");
        let from = std::fs::metadata(&path).unwrap().len() as usize;
        StatementLog { path, from }
    }

    /// What the server logged since [`StatementLog::start`].
    fn since_start(&self) -> String {
        std::thread::sleep(std::time::Duration::from_millis(300)); // written asynchronously
        String::from_utf8_lossy(&std::fs::read(&self.path).unwrap()[self.from..]).to_string()
    }
}

/// With `log_statement = all`, the server logs every statement with its bound parameters: a
/// secret setting reaches the server as COPY data instead, which the log never holds, and is
/// stored exactly as given.
#[tokio::test]
async fn secret_settings_stay_out_of_the_statement_log() {
    let env = Env::enrolled().await;
    let log = StatementLog::start(&env).await;
    let password = "S3cretXYZ-pw\\with\tescapes\\.";
    let backend = "B2_ACCOUNT_ID=acct-1\nB2_ACCOUNT_KEY=K3yMarker77\n";
    let writes: [(&[&str], &str); 5] = [
        (&["settings", "set", "repository_password", "-"], password),
        (
            &[
                "settings",
                "set",
                "repository_password",
                "-",
                "--device",
                &env.device,
            ],
            password,
        ),
        (&["settings", "set", "repository_environment", "-"], backend),
        (
            &["settings", "set", "repository_url", "-"],
            "rest:https://fleet:UrlPa55Marker@backup.example.com/",
        ),
        (
            &["settings", "set", "notify_webhook_url", "-"],
            "https://hooks.example.com/T0kenMarker",
        ),
    ];
    for (args, value) in writes {
        assert_ok(&with_stdin(&env, args, &format!("{value}\n")));
    }
    let job = env.add_job("home", &[Path::new("/srv")]).await.to_string();
    let ping = "https://hc-ping.com/P1ngMarker";
    assert_ok(&with_stdin(
        &env,
        &["job", "edit", &job, "--ping-url", ping],
        "",
    ));
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT value FROM settings WHERE key = 'repository_password' ORDER BY device_id NULLS FIRST",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(stored, [password, password]);

    let text = log.since_start();
    assert!(
        text.contains("repository_password"),
        "the statements were logged: {text}"
    );
    for secret in [
        "S3cretXYZ",
        "K3yMarker77",
        "UrlPa55Marker",
        "T0kenMarker",
        "P1ngMarker",
    ] {
        assert!(!text.contains(secret), "{secret} reached the server log");
    }
    assert!(text.contains("COPY fleet_staged_value"), "{text}");
}

/// `tests/oracle/http_recorder.py` on 127.0.0.1: records every request; killed when dropped.
struct PingServer {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
}

impl PingServer {
    fn start(env: &Env) -> PingServer {
        let dir = env.dir.path().join("http");
        std::fs::create_dir_all(&dir).unwrap();
        let port_file = dir.join("port");
        let log = dir.join("requests.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/http_recorder.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(&port_file)
            .arg(&log)
            .spawn()
            .expect("python3");
        let start = std::time::Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p.trim().parse().unwrap();
            }
            assert!(start.elapsed().as_secs() < 20, "recorder did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        PingServer { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `METHOD PATH` of every request so far.
    fn paths(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let r: Value = serde_json::from_str(l).unwrap();
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap(),
                    r["path"].as_str().unwrap()
                )
            })
            .collect()
    }
}

impl Drop for PingServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A ping URL is a bearer secret (whoever knows it can report a failing backup as healthy, or
/// a healthy one as failed): admins and the job's own device read it; viewers, and the
/// maintenance owner reading the other devices' jobs, never do, through the CLI or any SQL;
/// nobody but an admin writes one. Each device still pings its own, under its own role, live
/// and from the local copy.
#[tokio::test]
async fn ping_urls_reach_only_admins_and_the_job_s_own_device() {
    let env = Env::with_repo().await;
    make_roles(&env);
    let http = PingServer::start(&env);
    let owner = enroll(&env, &env.url, &unique("pown"));
    let other = enroll(&env, &env.url, &unique("poth"));
    let src_o = env.make_source("src-o", 1);
    let src_x = env.make_source("src-x", 1);
    let job_o = add_job_for(&env, &owner.id, "home", &src_o).await;
    let job_x = add_job_for(&env, &other.id, "home", &src_x).await;
    env.set_setting("maintenance_device", &owner.id).await;
    let admin = url_with_user(&env.db, "backup_admin", ADMIN_PW);
    let viewer = url_with_user(&env.db, "backup_viewer", VIEWER_PW);
    let (tok_o, tok_x) = ("owner-token-7c1e", "other-token-93ab");
    for (job, tok) in [(job_o, tok_o), (job_x, tok_x)] {
        let url = http.url(&format!("/ping/{tok}"));
        assert_ok(&with_url(
            &env,
            &admin,
            &["job", "edit", &job.to_string(), "--ping-url", &url],
        ));
    }
    sqlx::query("ANALYZE").execute(&env.pool).await.unwrap();

    // The admin reads both.
    let out = with_url(&env, &admin, &["job", "list", "--json"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(text.contains(tok_o) && text.contains(tok_x), "{text}");
    let (ok, text) = psql(
        &admin,
        "SELECT string_agg(ping_url, ',') FROM job_ping_urls",
    );
    assert!(ok && text.contains(tok_o) && text.contains(tok_x), "{text}");

    // Nobody else reads another job's URL.
    let probes = [
        "SELECT ping_url FROM backup_jobs",
        "SELECT * FROM backup_jobs",
        "SELECT row_to_json(j) FROM backup_jobs j",
        "SELECT * FROM job_ping_urls",
        "SELECT * FROM job_summary",
        "SELECT * FROM latest_runs",
        "SELECT * FROM job_run_state",
        "SELECT * FROM job_retention",
        "SELECT * FROM runs",
        "SELECT * FROM pg_stats WHERE tablename IN ('backup_jobs', 'job_ping_urls')",
    ];
    let (x, o) = (job_x.to_string(), job_o.to_string());
    let readers: [(&str, &str, Vec<&str>); 3] = [
        ("a viewer", &viewer, vec![tok_o, tok_x]),
        ("the maintenance owner", &owner.url, vec![tok_x]),
        ("another device", &other.url, vec![tok_o]),
    ];
    for (who, url, foreign) in &readers {
        for sql in probes {
            let (_, text) = psql(url, sql);
            for tok in foreign {
                assert!(
                    !text.contains(tok),
                    "{who} read a ping URL with {sql}: {text}"
                );
            }
        }
        for args in [
            vec!["job", "list", "--json"],
            vec!["job", "show", &x, "--json"],
            vec!["job", "show", &o, "--json"],
            vec!["status", "--json"],
        ] {
            let out = with_url(&env, url, &args);
            let said = format!("{}{}", stdout(&out), stderr(&out));
            for tok in foreign {
                assert!(
                    !said.contains(tok),
                    "{who} read a ping URL with {args:?}: {said}"
                );
            }
        }
    }
    // The maintenance owner does see the other device's job, just not its URL.
    let out = with_url(&env, &owner.url, &["job", "show", &x, "--json"]);
    assert_ok(&out);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(shown["ping_url"].is_null(), "{shown}");
    // A device reads its own job's URL.
    let (ok, text) = psql(
        &owner.url,
        "SELECT string_agg(ping_url, ',') FROM job_ping_urls",
    );
    assert!(ok && text.contains(tok_o), "{text}");

    // Nobody but an admin writes one.
    for (who, url, _) in &readers {
        for sql in [
            format!(
                "INSERT INTO job_ping_urls (job_id, ping_url) VALUES ('{o}', 'https://evil/x')"
            ),
            "UPDATE job_ping_urls SET ping_url = 'https://evil/x'".to_string(),
            "DELETE FROM job_ping_urls".to_string(),
            format!("UPDATE backup_jobs SET ping_url = 'https://evil/x' WHERE id = '{o}'"),
        ] {
            let (ok, text) = psql(url, &sql);
            assert!(!ok || text.trim().is_empty(), "{who}: {sql}: {text}");
        }
        let out = with_url(&env, url, &["job", "edit", &o, "--no-ping-url"]);
        assert_ne!(out.status.code(), Some(0), "{who}: {}", stdout(&out));
    }
    let urls: Vec<String> =
        sqlx::query_scalar("SELECT ping_url FROM job_ping_urls ORDER BY ping_url")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(
        urls,
        // "other-..." sorts before "owner-..."
        [
            http.url(&format!("/ping/{tok_x}")),
            http.url(&format!("/ping/{tok_o}"))
        ]
    );

    // Each device pings its own URL under its own role, the maintenance owner too.
    for (dev, job, tok) in [(&other, job_x, tok_x), (&owner, job_o, tok_o)] {
        let out = as_device(&env, dev)
            .args(["run", &job.to_string()])
            .output()
            .unwrap();
        assert_ok(&out);
        let paths = http.paths();
        for want in [
            format!("POST /ping/{tok}/start"),
            format!("POST /ping/{tok}"),
        ] {
            assert!(paths.contains(&want), "{want} not in {paths:?}");
        }
    }
    // And from the local copy that sync writes (as the device), with the database away.
    let bin = fake_systemctl(&env);
    let out = as_device(&env, &owner)
        .env("PATH", path_with(&bin))
        .args(["sync", "--unit-dir"])
        .arg(env.dir.path().join("units-ping"))
        .output()
        .unwrap();
    assert_ok(&out);
    let before = http.paths().len();
    let out = as_device(&env, &owner)
        .env("DATABASE_URL", "postgres://nobody:x@127.0.0.1:1/none")
        .args(["run", &o])
        .output()
        .unwrap();
    assert_ok(&out);
    let paths = http.paths();
    assert!(
        paths[before..].contains(&format!("POST /ping/{tok_o}/start")),
        "{paths:?}"
    );
}

/// A fleet from before migration 012 (roles granted by that version's `db roles`, a ping URL in
/// `backup_jobs.ping_url`): the migration moves the URL out of the job row and grants the new
/// table itself, so devices keep reading and pinging their own URL before anyone runs
/// `db roles` again, and viewers stop seeing it.
#[tokio::test]
async fn migration_012_moves_ping_urls_without_waiting_for_db_roles() {
    // The cluster's group roles with the shared passwords (on a throwaway database).
    let scratch = Env::enrolled().await;
    make_roles(&scratch);
    let env = Env::empty().await;
    let http = PingServer::start(&env);
    // The schema as migration 011 left it: the same files, so the same checksums.
    let old = env.dir.path().join("migrations-011");
    std::fs::create_dir_all(&old).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.as_str() < "012" {
            std::fs::copy(dir.join(&name), old.join(&name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&env.pool)
        .await
        .unwrap();
    // What `db roles` granted at that version (DEVICE_GRANTS did not name the new tables yet).
    let mut grants = vec![
        format!(
            "GRANT CONNECT ON DATABASE {} TO backup_client, backup_viewer",
            env.db
        ),
        "GRANT USAGE ON SCHEMA public TO backup_client, backup_viewer".to_string(),
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO backup_viewer".to_string(),
    ];
    grants.extend(
        restic_fleet::store::roles::DEVICE_GRANTS
            .iter()
            .filter(|g| {
                !g.contains("job_ping_urls")
                    && !g.contains("schema_client_minimum")
                    && !g.contains("repositor")
            })
            .map(|g| g.to_string()),
    );
    for g in &grants {
        sqlx::query(g).execute(&env.pool).await.unwrap();
    }
    let out = Command::new("restic")
        .args(["init", "--quiet"])
        .env("RESTIC_REPOSITORY", env.repo())
        .env("RESTIC_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_ok(&out);
    env.set_setting("repository_url", env.repo().to_str().unwrap())
        .await;
    env.set_setting("repository_password", PASSWORD).await;
    env.set_setting(
        "repository_cache_dir",
        env.dir.path().join("cache").to_str().unwrap(),
    )
    .await;
    let id = unique("upg");
    let src = env.make_source("src", 1);
    sqlx::query("INSERT INTO devices (id, name, platform) VALUES ($1, $1, 'linux')")
        .bind(&id)
        .execute(&env.pool)
        .await
        .unwrap();
    let url = http.url("/ping/upgrade-token-5d2f");
    let job: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO backup_jobs (device_id, name, source_paths, ping_url) \
         VALUES ($1, 'home', $2, $3) RETURNING id",
    )
    .bind(&id)
    .bind(vec![src.to_string_lossy().into_owned()])
    .bind(&url)
    .fetch_one(&env.pool)
    .await
    .unwrap();

    // The first current client to connect applies 012 (here: enrolling the device).
    let dev = enroll(&env, &env.url, &id);
    let moved: (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT (SELECT ping_url FROM job_ping_urls WHERE job_id = $1), \
                (SELECT ping_url FROM backup_jobs WHERE id = $1)",
    )
    .bind(job)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(moved, (Some(url.clone()), None));
    let out = as_device(&env, &dev)
        .args(["run", &job.to_string()])
        .output()
        .unwrap();
    assert_ok(&out);
    let paths = http.paths();
    assert!(
        paths.contains(&"POST /ping/upgrade-token-5d2f/start".to_string()),
        "{paths:?}"
    );
    let viewer = url_with_user(&env.db, "backup_viewer", VIEWER_PW);
    let out = with_url(&env, &viewer, &["job", "list", "--json"]);
    assert_ok(&out);
    assert!(!stdout(&out).contains("upgrade-token"), "{}", stdout(&out));
    let (ok, text) = psql(&viewer, "SELECT * FROM backup_jobs");
    assert!(ok && !text.contains("upgrade-token"), "{text}");
}

#[tokio::test]
async fn a_device_role_cannot_learn_other_device_ids_from_role_names() {
    let env = Env::with_repo().await;
    make_roles(&env);
    // Ids of letters and digits only: a role name made from the id would hold it verbatim.
    let id = || format!("peer{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let (a, b) = (enroll(&env, &env.url, &id()), enroll(&env, &env.url, &id()));
    for dev in [&a, &b] {
        assert!(
            dev.role.starts_with("fleet_") && !dev.role.contains(&dev.id[4..]),
            "{} names its device {}",
            dev.role,
            dev.id
        );
    }
    // b holds a session open while a looks at the catalog.
    let mut open = Command::new("psql")
        .args(["-X", "-q", "-d", &b.url, "-c", "SELECT pg_sleep(20)"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (ok, roles) = psql(&a.url, "SELECT string_agg(rolname, ' ') FROM pg_roles");
    assert!(ok && roles.contains(&b.role), "{roles}");
    assert!(!roles.contains(&b.id) && !roles.contains(&a.id), "{roles}");
    // Who is connected is not for devices to see (the admin sees it).
    let sessions = "SELECT count(*) FROM pg_stat_activity WHERE usename = ";
    let (ok, text) = psql(&a.url, &format!("{sessions}'{}'", b.role));
    assert!(!ok && text.contains("permission denied"), "{text}");
    let (ok, text) = psql(
        &a.url,
        "SELECT count(*) FROM pg_stat_get_backend_idset() s \
         WHERE pg_stat_get_backend_userid(s) IS NOT NULL",
    );
    assert!(!ok && text.contains("permission denied"), "{text}");
    let admin = url_with_user(&env.db, "backup_admin", ADMIN_PW);
    let (ok, text) = psql(&admin, &format!("{sessions}'{}'", b.role));
    assert!(ok && text.trim() == "1", "{text}");
    let _ = open.kill();
    let _ = open.wait();

    // A role named after its device (as enrolment used to name them) is renamed when rotated.
    let legacy = format!("fleet_{}_0123456789ab", a.id);
    sqlx::query(&format!("ALTER ROLE \"{}\" RENAME TO \"{legacy}\"", a.role))
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE device_roles SET role_name = $1 WHERE device_id = $2")
        .bind(&legacy)
        .bind(&a.id)
        .execute(&env.pool)
        .await
        .unwrap();
    let out = with_url(&env, &env.url, &["device", "enroll", &a.id, "--json"]);
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let role = v["role"].as_str().unwrap();
    assert!(
        role.starts_with("fleet_") && !role.contains(&a.id[4..]),
        "{role}"
    );
    assert_eq!(v["rotated"], true);
    let (ok, text) = psql(
        v["database_url"].as_str().unwrap(),
        "SELECT fleet_current_device()",
    );
    assert!(ok && text.trim() == a.id, "{text}");
    let (_, roles) = psql(&b.url, "SELECT string_agg(rolname, ' ') FROM pg_roles");
    assert!(
        !roles.contains(&legacy) && !roles.contains(&a.id),
        "{roles}"
    );
}

#[tokio::test]
async fn infinite_and_absurd_times_are_refused_where_a_device_writes_them() {
    let env = Env::with_repo().await;
    make_roles(&env);
    let a = enroll(&env, &env.url, &unique("times"));
    let job: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO backup_jobs (device_id, name, source_paths) VALUES ($1, 'j', ARRAY['/x']) \
         RETURNING id",
    )
    .bind(&a.id)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    for sql in [
        format!(
            "UPDATE devices SET last_seen = 'infinity' WHERE id = '{}'",
            a.id
        ),
        format!(
            "UPDATE devices SET last_seen = '200000-01-01' WHERE id = '{}'",
            a.id
        ),
        format!(
            "INSERT INTO runs (job_id, device_id, start_time, status) \
             VALUES ('{job}', '{}', '-infinity', 'failed')",
            a.id
        ),
        format!(
            "INSERT INTO runs (job_id, device_id, start_time, end_time, status) \
             VALUES ('{job}', '{}', NOW(), 'infinity', 'success')",
            a.id
        ),
    ] {
        let (ok, text) = psql(&a.url, &sql);
        assert!(!ok && text.contains("sane_times"), "{sql}: {text}");
    }
    // What the fleet reads stays readable.
    for args in [
        &["status", "--json"][..],
        &["device", "list"],
        &["runs", "list"],
    ] {
        let out = with_url(&env, &env.url, args);
        assert!(
            out.status.code().is_some_and(|c| c < 100) && !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}
