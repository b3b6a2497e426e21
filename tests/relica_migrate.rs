//! `relica-migrate` against a real PostgreSQL (and, for the tag check, the real restic).
//!
//! Expectations are written from the fixture JSON by hand (read with python/jq), not from the
//! importer's output.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::Value;
use uuid::Uuid;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/relica/relica-account-info.json"
);

// Backup ids and names from read_only.backups.
const DEVICE1_DOKUMENTY: &str = "cb3104d6-5d04-4cd6-9a8e-73c6c4b61fe9";
const DEVICE1_HOME: &str = "8abc492b-cfff-4c78-9202-f85bdcf4714a";
const DEVICE3_FOTKY: &str = "9fe9ec57-e2af-4254-938d-84a4d927475f";
const DEVICE3_DOKUMENTY: &str = "ecbe3731-e00a-4a7a-943b-0b86a020e506";
const DEVICE4_UCTO: &str = "2eead097-bf08-4598-8df5-09d131cd1d10";
const HOMEPC_FOTKY: &str = "49ea842d-eaeb-4996-862d-d625dcb86649";
const DEVICE1_TEST: &str = "e34580bc-3f4b-4bca-b713-04a25f352317";
const CLOUD_BACKUPS: &str = "2ac41143-fd87-4c5d-b2d4-213eb5b6c42e";
const CLOUD_HOME: &str = "d39816ce-432a-48fb-a760-ff357fd39bde";
const DEVICE7_FOTKY: &str = "4c2f1d05-b6ad-4922-8168-f95d4540f41c";
const DEVICE1_ZPEVNIKY: &str = "5dd8bfb2-57bf-49a0-a4c3-a31b97d956c5";
const ACCOUNT: &str = "003dbcee-4f0a-4a55-a7bb-a6511b263558";
const ORIGIN_DEVICE8: &str = "9c04c5c2-46bc-4648-841f-770b20e90477";

fn fixture_text() -> String {
    std::fs::read_to_string(FIXTURE).expect("fixture readable")
}

fn migrate(env: &Env, file: &Path, extra: &[&str]) -> Output {
    env.cmd()
        .arg("relica-migrate")
        .arg(file)
        .args(extra)
        .output()
        .unwrap()
}

fn report(out: &Output) -> Value {
    assert_ok(out);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout(out),
            stderr(out)
        )
    })
}

/// Writes `text` into the test's temp dir.
fn write_file(env: &Env, name: &str, text: &str) -> PathBuf {
    let p = env.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

async fn count(env: &Env, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

/// Every row of every table as text (all columns, JSON and arrays included), sorted.
async fn dump(env: &Env) -> String {
    let mut out = String::new();
    for table in ["devices", "backup_jobs", "schedules", "runs", "settings"] {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT row_to_json(t)::text FROM {table} t ORDER BY 1"
        ))
        .fetch_all(&env.pool)
        .await
        .unwrap();
        out.push_str(table);
        out.push('\n');
        for r in rows {
            out.push_str(&r);
            out.push('\n');
        }
    }
    out
}

async fn crons_of(env: &Env, job: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT cron_expression FROM schedules WHERE job_id = $1::uuid ORDER BY cron_expression",
    )
    .bind(job)
    .fetch_all(&env.pool)
    .await
    .unwrap()
}

async fn job_field<T>(env: &Env, job: &str, column: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    sqlx::query_scalar(&format!(
        "SELECT {column} FROM backup_jobs WHERE id = $1::uuid"
    ))
    .bind(job)
    .fetch_one(&env.pool)
    .await
    .unwrap_or_else(|e| panic!("job {job} column {column}: {e}"))
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// PostgreSQL keeps microseconds; Relica writes nanoseconds.
fn close(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    (a - b).num_microseconds().unwrap().abs() <= 1
}

fn n(r: &Value, name: &str, action: &str) -> u64 {
    r[name][action]
        .as_u64()
        .unwrap_or_else(|| panic!("{name}.{action} in {r}"))
}

fn item<'a>(r: &'a Value, sect: &str, id: &str) -> &'a Value {
    r[sect]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no {sect} item {id}"))
}

#[tokio::test]
async fn fixture_imports_end_to_end() {
    let env = Env::enrolled().await;
    let out = migrate(&env, Path::new(FIXTURE), &["--json"]);
    let r = report(&out);

    // 9 origins -> 9 devices (plus the test's own enrolled device).
    assert_eq!(n(&r, "devices", "created"), 9);
    assert_eq!(count(&env, "devices").await, 10);
    let mut ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM devices WHERE id <> 'test-device' ORDER BY id")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    ids.sort();
    assert_eq!(
        ids,
        [
            "cloud", "device1", "device2", "device3", "device4", "device5", "device6", "device8",
            "prcek"
        ]
    );
    let platform: String = sqlx::query_scalar("SELECT platform FROM devices WHERE id = 'device2'")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(platform, "windows"); // C:\Fotky, D:\Fotky, ...
    let platform: String = sqlx::query_scalar("SELECT platform FROM devices WHERE id = 'cloud'")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(platform, "linux");

    // 21 backups -> 21 jobs with their Relica ids and names, the origin's prefix kept in
    // origin_name and any other '/' made '-' (a job name never reads as DEVICE/NAME).
    assert_eq!(n(&r, "jobs", "created"), 21);
    assert_eq!(count(&env, "backup_jobs").await, 21);
    let text = fixture_text();
    let doc: Value = serde_json::from_str(&text).unwrap();
    for b in doc["read_only"]["backups"].as_array().unwrap() {
        let id = b["id"].as_str().unwrap();
        let name: String = job_field(&env, id, "name").await;
        let origin: String = job_field(&env, id, "origin_name").await;
        let relica = b["name"].as_str().unwrap();
        let expected = relica
            .strip_prefix(&format!("{origin}/"))
            .unwrap_or(relica)
            .replace('/', "-");
        assert_eq!(name, expected);
        let account: Option<Uuid> = job_field(&env, id, "account_id").await;
        assert_eq!(account, Some(Uuid::parse_str(ACCOUNT).unwrap()));
    }
    let name: String = job_field(&env, DEVICE4_UCTO, "name").await;
    assert_eq!(name, "ÚČTO");
    let dev: String = job_field(&env, DEVICE4_UCTO, "device_id").await;
    assert_eq!(dev, "device4");
    // The origin is shown beside the name (the list's column may wrap it).
    for (args, shown) in [
        (&["job", "list", "--device", "device4"][..], "(origin"),
        (&["job", "show", DEVICE4_UCTO], "origin:      device4"),
    ] {
        let out = env.cmd().args(args).output().unwrap();
        assert_ok(&out);
        let text = stdout(&out);
        assert!(text.contains(shown), "{args:?}: {text}");
    }

    // The "device7/..." backups belong to origin 9c04c5c2, whose name is "device8".
    let dev: String = job_field(&env, DEVICE7_FOTKY, "device_id").await;
    assert_eq!(dev, "device8");
    let origin: String = job_field(&env, DEVICE7_FOTKY, "origin_name").await;
    assert_eq!(origin, "device8");
    let origin_id: Uuid = job_field(&env, DEVICE7_FOTKY, "origin_id").await;
    assert_eq!(origin_id, Uuid::parse_str(ORIGIN_DEVICE8).unwrap());
    // "homepc/..." belongs to origin "device2".
    let dev: String = job_field(&env, HOMEPC_FOTKY, "device_id").await;
    assert_eq!(dev, "device2");

    // Include lists deduplicated in order; excludes as given (absent -> empty).
    let paths: Vec<String> = job_field(&env, DEVICE3_DOKUMENTY, "source_paths").await;
    assert_eq!(
        paths,
        [r"C:\Users\User2\Documents", r"C:\Users\User2\Desktop"]
    );
    let paths: Vec<String> = job_field(&env, HOMEPC_FOTKY, "source_paths").await;
    assert_eq!(paths, [r"C:\Fotky", r"D:\Fotky"]);
    let excl: Vec<String> = job_field(&env, DEVICE1_HOME, "exclude_patterns").await;
    assert_eq!(excl.len(), 17);
    assert_eq!(excl[0], "/home/user/.cache");
    assert_eq!(excl[5], "/home/user/VirtualBox VMs");
    assert_eq!(excl[16], "/home/user/.jdks");
    let excl: Option<Vec<String>> = job_field(&env, DEVICE4_UCTO, "exclude_patterns").await;
    assert!(excl.unwrap_or_default().is_empty());

    // Schedules: one cron line per time of day, 0 = Sunday.
    assert_eq!(count(&env, "schedules").await, 21);
    assert_eq!(n(&r, "schedules", "created"), 21);
    assert_eq!(
        crons_of(&env, DEVICE1_DOKUMENTY).await,
        ["0 13 * * *", "0 23 * * *"]
    );
    assert_eq!(crons_of(&env, DEVICE3_FOTKY).await, ["30 1 * * 1,2,4,6"]);
    assert_eq!(crons_of(&env, DEVICE1_HOME).await, ["30 22 * * *"]);
    assert_eq!(crons_of(&env, CLOUD_BACKUPS).await, ["0 3 * * 1,3,5"]);
    assert_eq!(crons_of(&env, DEVICE7_FOTKY).await, ["0 22 * * 0"]);
    assert_eq!(crons_of(&env, DEVICE1_ZPEVNIKY).await, ["0 10 * * 1"]);
    assert_eq!(crons_of(&env, DEVICE4_UCTO).await, ["0 12 * * *"]);
    // Manual-only backups (scheduled false) have none.
    assert!(crons_of(&env, HOMEPC_FOTKY).await.is_empty());
    assert!(crons_of(&env, DEVICE1_TEST).await.is_empty());
    let marked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM schedules WHERE metadata->>'source' = 'relica'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(marked, 21);

    // last_run_at from local.last_backups_done; next_run_at computed for every schedule.
    let (last, next): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT last_run_at, next_run_at FROM schedules WHERE job_id = $1::uuid")
            .bind(CLOUD_BACKUPS)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(close(last.unwrap(), t("2025-12-15T03:01:07.580094317Z")));
    assert!(next.unwrap() > Utc::now());
    let last: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT last_run_at FROM schedules WHERE job_id = $1::uuid")
            .bind(CLOUD_HOME)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(close(last.unwrap(), t("2025-12-15T01:00:59.59646097Z")));
    let never: i64 =
        sqlx::query_scalar("SELECT count(*) FROM schedules WHERE last_run_at IS NOT NULL")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(never, 2);
    let no_next: i64 =
        sqlx::query_scalar("SELECT count(*) FROM schedules WHERE next_run_at IS NULL")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(no_next, 0);

    // Hooks and destinations kept in metadata; the `end` hook became the finally hook.
    let cmd: String = sqlx::query_scalar(
        "SELECT metadata->'relica'->'hooks'->0->>'command' FROM backup_jobs WHERE id = $1::uuid",
    )
    .bind(DEVICE1_HOME)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        cmd,
        "/usr/bin/endpoint-watcher device1 relica-backup-end home"
    );
    let hooks: (Option<String>, Option<String>, String) = sqlx::query_as(
        "SELECT hook_before, hook_finally, hook_before_on_error FROM backup_jobs \
         WHERE id = $1::uuid",
    )
    .bind(DEVICE1_HOME)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        hooks,
        (
            None,
            Some("/usr/bin/endpoint-watcher device1 relica-backup-end home".into()),
            "stop".into()
        )
    );
    let dest: String = sqlx::query_scalar(
        "SELECT metadata->'relica'->'destinations'->0->>'id' FROM backup_jobs WHERE id = $1::uuid",
    )
    .bind(DEVICE4_UCTO)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(dest, "cb871492-76dc-4683-8ecd-d9a6c84ae798");

    // The report: warnings (prefix differs from origin name; duplicates in include; no backups
    // for device5), the hooks sentence, and one enrolment line per device.
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("device7/Fotky") && w.contains("\"device8\"")),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("device3/Dokumenty") && w.contains("duplicate")),
        "{warnings:#?}"
    );
    assert!(warnings.iter().any(|w| w.contains("\"device5\"")));
    assert!(
        r["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("hooks")
                && n.as_str().unwrap().contains("finally hook"))
    );
    let enrol = r["enrolment"].as_array().unwrap();
    assert_eq!(enrol.len(), 9);
    assert!(
        enrol
            .iter()
            .any(|e| e["command"] == "restic-fleet device enroll device1"),
        "{enrol:#?}"
    );
    assert_eq!(r["dry_run"], false);
    // No history without --import-history.
    assert_eq!(count(&env, "runs").await, 0);

    // No origin `key` (nor account secret) anywhere in the database.
    let all = dump(&env).await;
    let mut secrets: Vec<String> = doc["read_only"]["origins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(secrets.len(), 9);
    for k in ["api_key", "password", "metadata_encryption_key"] {
        secrets.push(doc["read_only"]["account"][k].as_str().unwrap().to_owned());
    }
    for s in &secrets {
        assert!(!all.contains(s.as_str()), "database holds secret {s}");
    }

    // The human report says the same.
    let out = migrate(&env, Path::new(FIXTURE), &["--dry-run"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("jobs:      0 created, 0 updated, 21 unchanged, 0 skipped"),
        "{text}"
    );
    assert!(text.contains("become the jobs' hooks"), "{text}");
    assert!(text.contains("device enroll device4"), "{text}");
}

#[tokio::test]
async fn history_is_imported_once() {
    let env = Env::enrolled().await;
    let r = report(&migrate(
        &env,
        Path::new(FIXTURE),
        &["--import-history", "--json"],
    ));
    // 500 recent_tasks: 489 error, 11 success; 252 of cloud/backups, 248 of cloud/home.
    assert_eq!(n(&r, "runs", "created"), 500);
    assert_eq!(count(&env, "runs").await, 500);
    let by_status: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM runs GROUP BY status ORDER BY status")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(
        by_status,
        [("failed".to_string(), 489), ("success".to_string(), 11)]
    );
    let per_job: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE job_id = $1::uuid")
        .bind(CLOUD_BACKUPS)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(per_job, 252);
    let devices: Vec<String> = sqlx::query_scalar("SELECT DISTINCT device_id FROM runs")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(devices, ["cloud"]);
    // The first task: an error with its message and times.
    let (status, msg, start, end): (String, Option<String>, DateTime<Utc>, Option<DateTime<Utc>>) =
        sqlx::query_as(
            "SELECT status, error_message, start_time, end_time FROM runs \
             WHERE metadata->>'relica_task_id' = 'e00d98bf-80f9-4f26-8fda-5d7a171b8645'",
        )
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(status, "failed");
    assert_eq!(
        msg.as_deref(),
        Some(
            "opening destination 'Cloud': starting rclone: timed out connecting to rclone; maybe \
             upstream cloud provider is unreachable"
        )
    );
    assert!(close(start, t("2025-12-04T08:49:17.743154362Z")));
    assert!(close(end.unwrap(), t("2025-12-04T08:49:27.782800592Z")));
    let (status, msg): (String, Option<String>) = sqlx::query_as(
        "SELECT status, error_message FROM runs \
         WHERE metadata->>'relica_task_id' = 'a565783b-bf23-4965-b877-a04430316fd9'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), msg), ("success", None));

    // Again: nothing added.
    let r = report(&migrate(
        &env,
        Path::new(FIXTURE),
        &["--import-history", "--json"],
    ));
    assert_eq!(n(&r, "runs", "created"), 0);
    assert_eq!(n(&r, "runs", "unchanged"), 500);
    assert_eq!(count(&env, "runs").await, 500);
}

#[tokio::test]
async fn rerun_is_idempotent_and_keeps_edits() {
    let env = Env::enrolled().await;
    report(&migrate(&env, Path::new(FIXTURE), &["--json"]));
    // A schedule a user added to an imported job.
    sqlx::query(
        "INSERT INTO schedules (job_id, schedule_type, cron_expression) VALUES ($1::uuid, 'cron', '0 6 * * *')",
    )
    .bind(DEVICE1_HOME)
    .execute(&env.pool)
    .await
    .unwrap();
    let before = dump(&env).await;

    let r = report(&migrate(&env, Path::new(FIXTURE), &["--json"]));
    for s in ["devices", "jobs", "schedules"] {
        assert_eq!(n(&r, s, "created"), 0, "{s}");
        assert_eq!(n(&r, s, "updated"), 0, "{s}");
        assert_eq!(n(&r, s, "skipped"), 0, "{s}");
        assert_eq!(n(&r, s, "deleted"), 0, "{s}");
    }
    assert_eq!(n(&r, "devices", "unchanged"), 9);
    assert_eq!(n(&r, "jobs", "unchanged"), 21);
    assert_eq!(n(&r, "schedules", "unchanged"), 21);
    assert_eq!(dump(&env).await, before, "a no-op re-import changed rows");

    // Edit a job in the database: the import keeps it and says so.
    sqlx::query(
        "UPDATE backup_jobs SET source_paths = ARRAY['/srv/elsewhere'] WHERE id = $1::uuid",
    )
    .bind(DEVICE1_HOME)
    .execute(&env.pool)
    .await
    .unwrap();
    let r = report(&migrate(&env, Path::new(FIXTURE), &["--json"]));
    assert_eq!(n(&r, "jobs", "skipped"), 1);
    assert_eq!(n(&r, "jobs", "unchanged"), 20);
    let it = item(&r, "jobs", DEVICE1_HOME);
    assert_eq!(it["action"], "skipped");
    assert_eq!(it["fields"], serde_json::json!(["source_paths"]));
    assert!(
        it["reason"].as_str().unwrap().contains("edited")
            && it["reason"].as_str().unwrap().contains("--overwrite"),
        "{it}"
    );
    let paths: Vec<String> = job_field(&env, DEVICE1_HOME, "source_paths").await;
    assert_eq!(paths, ["/srv/elsewhere"]);
    // The human report names it too.
    let out = migrate(&env, Path::new(FIXTURE), &[]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains(&format!("skipped job \"home\" ({DEVICE1_HOME})")),
        "{}",
        stdout(&out)
    );

    // --overwrite replaces it, and leaves the user's own schedule alone.
    let r = report(&migrate(
        &env,
        Path::new(FIXTURE),
        &["--overwrite", "--json"],
    ));
    assert_eq!(n(&r, "jobs", "updated"), 1);
    assert_eq!(item(&r, "jobs", DEVICE1_HOME)["action"], "updated");
    let paths: Vec<String> = job_field(&env, DEVICE1_HOME, "source_paths").await;
    assert_eq!(paths, ["/home/user"]);
    assert_eq!(
        crons_of(&env, DEVICE1_HOME).await,
        ["0 6 * * *", "30 22 * * *"]
    );
    // And then all is quiet again.
    let r = report(&migrate(&env, Path::new(FIXTURE), &["--json"]));
    assert_eq!(n(&r, "jobs", "unchanged"), 21);

    // A schedule the import made, edited by a user, also counts as an edit of the job.
    sqlx::query("UPDATE schedules SET cron_expression = '0 4 * * 1,3,5' WHERE job_id = $1::uuid")
        .bind(CLOUD_BACKUPS)
        .execute(&env.pool)
        .await
        .unwrap();
    let r = report(&migrate(&env, Path::new(FIXTURE), &["--json"]));
    let it = item(&r, "jobs", CLOUD_BACKUPS);
    assert_eq!(it["action"], "skipped");
    assert_eq!(it["fields"], serde_json::json!(["schedules"]));
    assert_eq!(crons_of(&env, CLOUD_BACKUPS).await, ["0 4 * * 1,3,5"]);
    assert_eq!(count(&env, "backup_jobs").await, 21);
    assert_eq!(count(&env, "schedules").await, 22);

    // A disabled imported schedule is an edit too; --overwrite enables it again, and after
    // that the import is quiet.
    sqlx::query("UPDATE schedules SET enabled = false WHERE job_id = $1::uuid")
        .bind(DEVICE1_HOME)
        .execute(&env.pool)
        .await
        .unwrap();
    let r = report(&migrate(&env, Path::new(FIXTURE), &["--json"]));
    assert_eq!(item(&r, "jobs", DEVICE1_HOME)["action"], "skipped");
    report(&migrate(
        &env,
        Path::new(FIXTURE),
        &["--overwrite", "--json"],
    ));
    let enabled: Vec<bool> = sqlx::query_scalar(
        "SELECT enabled FROM schedules WHERE job_id = $1::uuid AND metadata->>'source' = 'relica'",
    )
    .bind(DEVICE1_HOME)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(enabled, [true]);
    let r = report(&migrate(&env, Path::new(FIXTURE), &["--json"]));
    assert_eq!(
        item(&r, "jobs", DEVICE1_HOME)["action"],
        "unchanged",
        "{r:#}"
    );
}

#[tokio::test]
async fn malformed_inputs_are_refused_and_change_nothing() {
    let env = Env::enrolled().await;
    let text = fixture_text();
    let before = dump(&env).await;
    let backups_0 =
        "read_only.backups[0] (\"device1/Dokumenty\", id cb3104d6-5d04-4cd6-9a8e-73c6c4b61fe9)";
    let cases: Vec<(&str, String, String)> = vec![
        (
            "not-json.json",
            "this is not JSON".to_owned(),
            "not valid JSON".to_owned(),
        ),
        (
            "v4.json",
            text.replacen("\"cache_version\": 3", "\"cache_version\": 4", 1),
            "cache_header.cache_version is 4".to_owned(),
        ),
        (
            "missing-origin.json",
            text.replacen(
                "\"origin_id\": \"f213f03b-c8e1-47a5-8bf5-f7c8dd76217d\"",
                "\"origin_id\": \"44444444-4444-4444-8444-444444444444\"",
                1,
            ),
            "origin_id 44444444-4444-4444-8444-444444444444 is not among read_only.origins"
                .to_owned(),
        ),
        (
            "bad-time.json",
            text.replacen("\"13:00\"", "\"25:00\"", 1),
            format!("{backups_0}.schedule.times_of_day[0]"),
        ),
    ];
    for (name, body, expected) in &cases {
        assert_ne!(body, &text, "{name}: the fixture edit did not apply");
        let file = write_file(&env, name, body);
        let out = migrate(&env, &file, &["--import-history"]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(expected.as_str()), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: one sentence: {err}");
        assert!(stdout(&out).is_empty(), "{name}");
        assert_eq!(dump(&env).await, before, "{name} changed the database");
    }
    // The missing-origin case names the backup.
    let out = migrate(&env, &env.dir.path().join("missing-origin.json"), &[]);
    assert!(stderr(&out).contains(backups_0), "{}", stderr(&out));

    // Unreadable file, unknown origin filter, unreadable password file.
    let out = migrate(&env, &env.dir.path().join("nope.json"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope.json"), "{}", stderr(&out));
    let out = migrate(&env, Path::new(FIXTURE), &["--origin", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("\"nosuch\""), "{}", stderr(&out));
    let out = migrate(
        &env,
        Path::new(FIXTURE),
        &[
            "--repository-url",
            "/srv/repo",
            "--password-file",
            "/nonexistent/pw",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/pw"), "{}", stderr(&out));
    // A repository URL with a password is not taken as an argument.
    let out = migrate(
        &env,
        Path::new(FIXTURE),
        &["--repository-url", "rest:https://u:hunter2@host/repo"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("holds a password") && err.contains("settings set repository_url -"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(dump(&env).await, before);
}

#[tokio::test]
async fn dry_run_writes_nothing_and_database_url_needs_no_config() {
    // Not enrolled: no config file, only --database-url.
    let env = Env::empty().await;
    let pw = write_file(&env, "pw", "s3cret-Passw0rd\n");
    let out = migrate(
        &env,
        Path::new(FIXTURE),
        &[
            "--database-url",
            &env.url,
            "--dry-run",
            "--import-history",
            "--repository-url",
            "sftp:backup@nas:/srv/restic",
            "--password-file",
            pw.to_str().unwrap(),
            "--json",
        ],
    );
    let r = report(&out);
    assert_eq!(r["dry_run"], true);
    assert_eq!(n(&r, "devices", "created"), 9);
    assert_eq!(n(&r, "jobs", "created"), 21);
    assert_eq!(n(&r, "schedules", "created"), 21);
    assert_eq!(n(&r, "runs", "created"), 500);
    assert_eq!(r["settings"].as_array().unwrap().len(), 2);
    for table in ["devices", "backup_jobs", "schedules", "runs"] {
        assert_eq!(count(&env, table).await, 0, "{table}");
    }
    let url: String = sqlx::query_scalar(
        "SELECT value FROM settings WHERE device_id IS NULL AND key = 'repository_url'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(url, "");
    assert!(!stdout(&out).contains("s3cret"));

    // For real: the settings are written, the password without its newline, never printed.
    let out = migrate(
        &env,
        Path::new(FIXTURE),
        &[
            "--database-url",
            &env.url,
            "--repository-url",
            "sftp:backup@nas:/srv/restic",
            "--password-file",
            pw.to_str().unwrap(),
        ],
    );
    assert_ok(&out);
    assert!(!stdout(&out).contains("s3cret") && !stderr(&out).contains("s3cret"));
    let settings: Vec<(String, String)> = sqlx::query_as(
        "SELECT key, value FROM settings WHERE device_id IS NULL \
         AND key IN ('repository_url', 'repository_password') ORDER BY key",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        settings,
        [
            (
                "repository_password".to_string(),
                "s3cret-Passw0rd".to_string()
            ),
            (
                "repository_url".to_string(),
                "sftp:backup@nas:/srv/restic".to_string()
            ),
        ]
    );
    assert_eq!(count(&env, "backup_jobs").await, 21);
    assert_eq!(count(&env, "runs").await, 0);
}

#[tokio::test]
async fn origin_filter_imports_one_device() {
    let env = Env::enrolled().await;
    // By name: origin "device2" owns the three "homepc/..." backups.
    let r = report(&migrate(
        &env,
        Path::new(FIXTURE),
        &["--origin", "device2", "--json"],
    ));
    assert_eq!(n(&r, "devices", "created"), 1);
    let mut names: Vec<String> = sqlx::query_scalar("SELECT name FROM backup_jobs ORDER BY name")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    names.sort();
    assert_eq!(
        names,
        ["homepc-Fotky", "homepc-User3 dokumenty", "homepc-davinci"]
    );
    let devices: Vec<String> = sqlx::query_scalar("SELECT DISTINCT device_id FROM backup_jobs")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(devices, ["device2"]);
    assert_eq!(count(&env, "devices").await, 2);

    // By UUID: origin 9c04c5c2 ("device8") with the four "device7/..." backups.
    let r = report(&migrate(
        &env,
        Path::new(FIXTURE),
        &["--origin", ORIGIN_DEVICE8, "--json"],
    ));
    assert_eq!(n(&r, "jobs", "created"), 4);
    assert_eq!(count(&env, "backup_jobs").await, 7);
    assert_eq!(r["enrolment"].as_array().unwrap().len(), 1);
    assert_eq!(r["enrolment"][0]["device_id"], "device8");
}

#[tokio::test]
async fn conflicts_are_reported_not_crashes() {
    let env = Env::enrolled().await;
    // device1 exists with a non-Relica job named like a Relica backup.
    sqlx::query("INSERT INTO devices (id, name, platform) VALUES ('device1', 'device1', 'linux')")
        .execute(&env.pool)
        .await
        .unwrap();
    let other: Uuid = sqlx::query_scalar(
        "INSERT INTO backup_jobs (device_id, name, source_paths) \
         VALUES ('device1', 'home', ARRAY['/x']) RETURNING id",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    // A job with a Relica backup's id already exists under another device, not imported.
    let (dev, name): (String, String) = ("test-device".into(), "mine".into());
    sqlx::query(
        "INSERT INTO backup_jobs (id, device_id, name, source_paths) VALUES ($1::uuid, $2, $3, ARRAY['/y'])",
    )
    .bind(CLOUD_HOME)
    .bind(&dev)
    .bind(&name)
    .execute(&env.pool)
    .await
    .unwrap();

    let r = report(&migrate(
        &env,
        Path::new(FIXTURE),
        &["--json", "--import-history"],
    ));
    assert_eq!(n(&r, "jobs", "created"), 19);
    assert_eq!(n(&r, "jobs", "skipped"), 2);
    let it = item(&r, "jobs", DEVICE1_HOME);
    assert_eq!(it["action"], "skipped");
    let reason = it["reason"].as_str().unwrap();
    assert!(
        reason.contains(&other.to_string()) && reason.contains("not from Relica"),
        "{reason}"
    );
    let it = item(&r, "jobs", CLOUD_HOME);
    assert_eq!(it["action"], "skipped");
    assert!(
        it["reason"]
            .as_str()
            .unwrap()
            .contains("not created by a Relica import"),
        "{it}"
    );
    // The pre-existing device1 (same name and platform) is adopted: only its Relica facts added.
    let it = item(&r, "devices", "device1");
    assert_eq!(it["action"], "updated");
    assert_eq!(it["fields"], serde_json::json!(["metadata.relica"]));
    // Nothing of the skipped jobs was written; their schedules are reported skipped.
    let src: Vec<String> = job_field(&env, CLOUD_HOME, "source_paths").await;
    assert_eq!(src, ["/y"]);
    assert!(crons_of(&env, DEVICE1_HOME).await.is_empty());
    assert_eq!(n(&r, "schedules", "skipped"), 2);
    // History of the existing job row is still imported; the absent job's would be skipped.
    assert_eq!(n(&r, "runs", "created"), 500);

    // --overwrite takes over the job with the Relica id, never the other job's name.
    let r = report(&migrate(
        &env,
        Path::new(FIXTURE),
        &["--json", "--overwrite"],
    ));
    assert_eq!(item(&r, "jobs", CLOUD_HOME)["action"], "updated");
    assert_eq!(item(&r, "jobs", DEVICE1_HOME)["action"], "skipped");
    let dev: String = job_field(&env, CLOUD_HOME, "device_id").await;
    assert_eq!(dev, "cloud");
    let name: String = job_field(&env, CLOUD_HOME, "name").await;
    assert_eq!(name, "home");
    let still: i64 = sqlx::query_scalar("SELECT count(*) FROM backup_jobs WHERE id = $1")
        .bind(other)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(still, 1);
}

#[tokio::test]
async fn imported_job_runs_with_the_relica_backup_tag() {
    let env = Env::with_repo().await;
    report(&migrate(&env, Path::new(FIXTURE), &["--json"]));
    let src = env.make_source("ucto", 3);
    sqlx::query(
        "UPDATE backup_jobs SET device_id = $1, source_paths = ARRAY[$2] WHERE id = $3::uuid",
    )
    .bind(&env.device)
    .bind(src.to_str().unwrap())
    .bind(DEVICE4_UCTO)
    .execute(&env.pool)
    .await
    .unwrap();
    let out = env.cmd().args(["run", DEVICE4_UCTO]).output().unwrap();
    assert_ok(&out);
    let out = env.restic(&["snapshots", "--json"]);
    assert_ok(&out);
    let snaps: Value = serde_json::from_slice(&out.stdout).unwrap();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 1);
    let tags: Vec<&str> = snaps[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&format!("backup:{DEVICE4_UCTO}").as_str()),
        "{tags:?}"
    );
    assert!(tags.contains(&"origin:device4"), "{tags:?}");
    assert!(
        tags.contains(&format!("account:{ACCOUNT}").as_str()),
        "{tags:?}"
    );

    // The moved job is now reported as edited (device_id, source_paths), not moved back.
    let r = report(&migrate(&env, Path::new(FIXTURE), &["--json"]));
    let it = item(&r, "jobs", DEVICE4_UCTO);
    assert_eq!(it["action"], "skipped");
    assert_eq!(
        it["fields"],
        serde_json::json!(["device_id", "source_paths"])
    );
}

// Relica's retention_days N > 0 becomes keep-within Nd.
#[tokio::test]
async fn retention_days_become_keep_within_policies() {
    let env = Env::enrolled().await;
    // The fixture's only destination ("Cloud", used by all 21 backups) keeps forever (0).
    let out = migrate(&env, Path::new(FIXTURE), &["--json"]);
    report(&out);
    assert_eq!(count(&env, "job_retention").await, 0, "0 keeps everything");

    let text = fixture_text();
    assert_eq!(text.matches("\"retention_days\": 0").count(), 1);
    let file = write_file(
        &env,
        "thirty.json",
        &text.replace("\"retention_days\": 0", "\"retention_days\": 30"),
    );
    // An admin's own policy is never replaced.
    sqlx::query("INSERT INTO job_retention (job_id, keep_last) VALUES ($1, 3)")
        .bind(Uuid::parse_str(DEVICE1_HOME).unwrap())
        .execute(&env.pool)
        .await
        .unwrap();
    let dry = report(&migrate(&env, &file, &["--json", "--dry-run"]));
    assert!(dry["notes"].to_string().contains("keep-within 30d"));
    assert_eq!(
        count(&env, "job_retention").await,
        1,
        "a dry run writes nothing"
    );

    let r = report(&migrate(&env, &file, &["--json"]));
    let jobs = count(&env, "backup_jobs").await;
    assert_eq!(jobs, 21);
    assert_eq!(count(&env, "job_retention").await, jobs);
    let within: Vec<(Uuid, Option<String>, Option<i32>)> =
        sqlx::query_as("SELECT job_id, keep_within, keep_last FROM job_retention")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    for (id, w, last) in &within {
        if id.to_string() == DEVICE1_HOME {
            assert_eq!((w.as_deref(), *last), (None, Some(3)));
        } else {
            assert_eq!((w.as_deref(), *last), (Some("30d"), None), "{id}");
        }
    }
    let notes = r["notes"].to_string();
    assert!(notes.contains(&format!("({DEVICE1_DOKUMENTY}): Relica's retention_days 30 became the retention policy keep-within 30d")), "{notes}");
    assert!(
        notes.contains(&format!(
            "({DEVICE1_HOME}): Relica's retention_days 30 was not applied"
        )),
        "{notes}"
    );
    let show = env
        .cmd()
        .args(["job", "show", DEVICE3_FOTKY, "--json"])
        .output()
        .unwrap();
    assert_ok(&show);
    let show: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(show["retention"]["keep_within"], "30d");
}
