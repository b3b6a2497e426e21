//! `run` against a real PostgreSQL and the real restic.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[derive(Debug, sqlx::FromRow)]
struct RunRow {
    id: i32,
    status: String,
    exit_code: Option<i32>,
    error_message: Option<String>,
    files_new: Option<i32>,
    files_changed: Option<i32>,
    files_unmodified: Option<i32>,
    dirs_new: Option<i32>,
    dirs_changed: Option<i32>,
    dirs_unmodified: Option<i32>,
    data_added_bytes: Option<i64>,
    total_files_processed: Option<i32>,
    total_bytes_processed: Option<i64>,
    duration_seconds: Option<i32>,
    snapshot_id: Option<String>,
    restic_output: Option<String>,
    restic_errors: Option<String>,
    triggered_by: Option<String>,
    end_time: Option<chrono::DateTime<chrono::Utc>>,
    metadata: Option<Value>,
}

async fn runs(env: &Env) -> Vec<RunRow> {
    sqlx::query_as(
        "SELECT id, status, exit_code, error_message, files_new, files_changed, files_unmodified, \
         dirs_new, dirs_changed, dirs_unmodified, data_added_bytes, total_files_processed, \
         total_bytes_processed, duration_seconds, snapshot_id, restic_output, restic_errors, \
         triggered_by, end_time, metadata FROM runs ORDER BY id",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap()
}

fn run_job(env: &Env, job: uuid::Uuid, extra: &[&str]) -> std::process::Output {
    env.cmd()
        .arg("run")
        .arg(job.to_string())
        .args(extra)
        .output()
        .unwrap()
}

/// Writes `mib` MiB of incompressible pseudo-random data (so restic has real work to do).
/// A job whose backup takes about `mib` seconds on any machine: `mib` MiB of incompressible
/// data, uploaded through restic's own `--limit-upload` of 1 MiB/s. Tests that act while a
/// backup runs need it to outlast them however fast the machine is.
async fn slow_job(env: &Env, name: &str, mib: usize) -> uuid::Uuid {
    use std::io::Write;
    let src = env.make_source(name, 1);
    let mut f = std::io::BufWriter::new(std::fs::File::create(src.join("big.bin")).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
    let job = env.add_job(name, &[&src]).await;
    sqlx::query("UPDATE backup_jobs SET restic_args = '[\"--limit-upload=1024\"]' WHERE id = $1")
        .bind(job)
        .execute(&env.pool)
        .await
        .unwrap();
    job
}

async fn wait_for_running(env: &Env, timeout: Duration) {
    let start = Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE status = 'running'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
        if n > 0 {
            return;
        }
        assert!(start.elapsed() < timeout, "no run reached status running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Children of `pid` (from /proc), with their command lines.
fn children(pid: u32) -> Vec<(u32, Vec<String>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
        if ppid == pid {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            let args = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            out.push((child, args));
        }
    }
    out
}

#[tokio::test]
async fn successful_run_matches_restic_snapshot_and_second_run_sees_unmodified_files() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 5);
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/skip.tmp"), "excluded").unwrap();
    let job = env.add_job("home, docs", &[&src]).await;
    sqlx::query(
        "UPDATE backup_jobs SET exclude_patterns = ARRAY['*.tmp'], origin_name = 'blade', \
         account_id = '003dbcee-4f0a-4a55-a7bb-a6511b263558', tags = ARRAY['a,b'] WHERE id = $1",
    )
    .bind(job)
    .execute(&env.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO schedules (job_id, schedule_type, cron_expression) VALUES ($1, 'cron', '0 3 * * *')")
        .bind(job)
        .execute(&env.pool)
        .await
        .unwrap();

    let out = run_job(&env, job, &[]);
    assert_ok(&out);
    assert!(stdout(&out).contains("succeeded"), "{}", stdout(&out));
    let rows = runs(&env).await;
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.status, "success");
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(r.triggered_by.as_deref(), Some("manual"));
    assert_eq!(
        r.files_new,
        Some(5),
        "the excluded *.tmp file is not counted"
    );
    assert_eq!(r.files_changed, Some(0));
    assert_eq!(r.files_unmodified, Some(0));
    assert!(r.dirs_new.unwrap() >= 2);
    assert_eq!(r.dirs_changed, Some(0));
    assert_eq!(r.dirs_unmodified, Some(0));
    assert!(r.data_added_bytes.unwrap() > 0);
    assert_eq!(r.total_files_processed, Some(5));
    assert!(r.total_bytes_processed.unwrap() > 0);
    assert!(r.duration_seconds.is_some() && r.end_time.is_some());
    assert!(r.error_message.is_none(), "{:?}", r.error_message);
    let output = r.restic_output.as_deref().unwrap();
    assert!(output.contains("\"message_type\":\"summary\""), "{output}");
    assert!(
        !output.contains("\"message_type\":\"status\""),
        "status lines are left out"
    );
    assert!(r.restic_errors.is_some());

    // The snapshot restic has is the one recorded: id, tags and host.
    let snaps = env.restic(&["snapshots", "--json"]);
    assert_ok(&snaps);
    let snaps: Value = serde_json::from_slice(&snaps.stdout).unwrap();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 1);
    let snap = &snaps[0];
    // The id restic's summary gave: the full one (restic 0.17+), or restic 0.14's short
    // one, which the next sync resolves (tests/fleet_scale.rs).
    let full = snap["id"].as_str().unwrap();
    let stored = r.snapshot_id.as_deref().unwrap();
    assert!(
        full.starts_with(stored) && (stored.len() == 8 || stored.len() == 64),
        "{stored} vs {full}"
    );
    // People are shown the short form restic itself prints.
    assert!(
        stdout(&out).contains(&format!("snapshot {}, ", &full[..8])),
        "{}",
        stdout(&out)
    );
    assert_eq!(snap["hostname"], "test-device");
    let mut tags: Vec<&str> = snap["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    let mut want = vec![
        format!("backup:{job}"),
        "device:test-device".to_string(),
        "origin:blade".to_string(),
        "account:003dbcee-4f0a-4a55-a7bb-a6511b263558".to_string(),
        "a%2Cb".to_string(),
    ];
    want.sort();
    assert_eq!(
        tags, want,
        "tags: the comma in a tag value must not split it"
    );

    // The schedule moved on.
    let (last, next): (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) = sqlx::query_as("SELECT last_run_at, next_run_at FROM schedules WHERE job_id = $1")
        .bind(job)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    let start: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT start_time FROM runs WHERE id = $1")
            .bind(r.id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(last, Some(start));
    let next = next.expect("next_run_at set");
    assert!(next > chrono::Utc::now() && next - chrono::Utc::now() <= chrono::Duration::hours(25));

    // Second run: everything unmodified, one file changed.
    std::fs::write(src.join("file0.txt"), "changed content").unwrap();
    // A timer firing when nothing is due (the slot was already covered) backs up nothing.
    let out = run_job(&env, job, &["--triggered-by", "schedule"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // A skip is not an error, and it claims nothing about other runs.
    assert!(
        stderr(&out).starts_with("skipped: not due, next run at "),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("error:"), "{}", stderr(&out));
    assert_eq!(runs(&env).await.len(), 1);
    // When the slot is due, the timer's run goes ahead.
    sqlx::query("UPDATE schedules SET next_run_at = NOW() - INTERVAL '1 second' WHERE job_id = $1")
        .bind(job)
        .execute(&env.pool)
        .await
        .unwrap();
    let out = run_job(&env, job, &["--triggered-by", "schedule", "--json"]);
    assert_ok(&out);
    let report: Value = serde_json::from_slice(&out.stdout).expect("run --json prints JSON");
    assert_eq!(report["status"], "success");
    let rows = runs(&env).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].files_unmodified, Some(4));
    assert_eq!(rows[1].files_changed, Some(1));
    assert_eq!(rows[1].files_new, Some(0));
    assert_eq!(rows[1].triggered_by.as_deref(), Some("schedule"));
    assert_eq!(report["run_id"], rows[1].id);
}

#[tokio::test]
async fn wrong_password_is_a_failed_run_saying_so() {
    let env = Env::with_repo().await;
    env.set_setting("repository_password", "not the password")
        .await;
    let src = env.make_source("src", 1);
    let job = env.add_job("docs", &[&src]).await;
    let out = run_job(&env, job, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows = runs(&env).await;
    assert_eq!(rows[0].status, "failed");
    // restic 0.17.1 gave the wrong password an exit code of its own; before, it was 1.
    let restic_exit = if restic_version() >= (0, 17, 1) {
        12
    } else {
        1
    };
    assert_eq!(rows[0].exit_code, Some(restic_exit));
    let msg = rows[0].error_message.as_deref().unwrap();
    assert_eq!(
        msg,
        format!(
            "restic could not open the repository {}: wrong password (restic exit \
             {restic_exit}); the repository_password in force is the global setting, so set \
             the right one with `restic-fleet settings set repository_password -`",
            env.repo().display()
        )
    );
    assert!(!msg.contains("not the password"));
    assert!(rows[0].end_time.is_some());
}

/// A wrong repository password or URL names the value in force (the device's own, or the
/// global setting) and the exact `settings set` for that scope.
#[tokio::test]
async fn wrong_repository_settings_name_the_scope_in_force() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 1);
    let job = env.add_job("docs", &[&src]).await;
    let own = |key: &'static str, value: String| {
        let env = &env;
        async move {
            sqlx::query(
                "INSERT INTO settings (device_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (device_id, key) DO UPDATE SET value = EXCLUDED.value",
            )
            .bind(&env.device)
            .bind(key)
            .bind(value)
            .execute(&env.pool)
            .await
            .unwrap();
        }
    };
    own("repository_password", "not the password".into()).await;
    assert_eq!(run_job(&env, job, &[]).status.code(), Some(1));
    let msg = runs(&env).await.pop().unwrap().error_message.unwrap();
    let fix = format!(
        "`restic-fleet settings set repository_password - --device {}`",
        env.device
    );
    assert!(
        msg.contains("wrong password") && msg.contains(&fix),
        "{msg}"
    );
    assert!(msg.contains("device") && msg.contains("own"), "{msg}");

    sqlx::query("DELETE FROM settings WHERE device_id IS NOT NULL")
        .execute(&env.pool)
        .await
        .unwrap();
    env.set_setting("repository_password", "not the password")
        .await;
    assert_eq!(run_job(&env, job, &[]).status.code(), Some(1));
    let msg = runs(&env).await.pop().unwrap().error_message.unwrap();
    assert!(
        msg.contains("global") && msg.contains("`restic-fleet settings set repository_password -`"),
        "{msg}"
    );

    let missing = env.dir.path().join("no-such-repo");
    own("repository_url", missing.to_string_lossy().into_owned()).await;
    assert_eq!(run_job(&env, job, &[]).status.code(), Some(1));
    let msg = runs(&env).await.pop().unwrap().error_message.unwrap();
    let fix = format!(
        "`restic-fleet settings set repository_url URL --device {}`",
        env.device
    );
    assert!(msg.contains("no-such-repo") && msg.contains(&fix), "{msg}");
}

#[tokio::test]
async fn missing_repository_is_a_failed_run_saying_so() {
    let env = Env::with_repo().await;
    let missing = env.dir.path().join("no-such-repo");
    env.set_setting("repository_url", missing.to_str().unwrap())
        .await;
    let src = env.make_source("src", 1);
    let job = env.add_job("docs", &[&src]).await;
    let out = run_job(&env, job, &[]);
    assert_eq!(out.status.code(), Some(1));
    let rows = runs(&env).await;
    assert_eq!(rows[0].status, "failed");
    let msg = rows[0].error_message.as_deref().unwrap();
    assert!(
        msg.contains("no repository") && msg.contains("no-such-repo"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "one sentence: {msg}");
}

#[tokio::test]
async fn missing_source_path_is_named_in_a_warning() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 2);
    let gone = env.dir.path().join("gone-folder");
    let job = env.add_job("docs", &[&src, &gone]).await;
    let out = run_job(&env, job, &[]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit code for warnings\n{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("gone-folder"), "{}", stdout(&out));
    let rows = runs(&env).await;
    assert_eq!(rows[0].status, "success");
    let msg = rows[0].error_message.as_deref().unwrap();
    // The one warning in every version: restic 0.19's exit 3 for the missing path is not
    // taken for unreadable files.
    assert_eq!(
        msg,
        format!("warning: source path {gone:?} does not exist and was NOT backed up")
    );
    let meta = rows[0].metadata.as_ref().unwrap();
    assert_eq!(meta["missing_paths"][0], gone.to_str().unwrap());
    assert!(rows[0].snapshot_id.is_some());
}

/// A job whose every path is missing fails; the recorded message names the paths (restic only
/// says that all of them do not exist) and the command that fixes them.
#[tokio::test]
async fn a_job_whose_only_path_is_missing_names_it() {
    let env = Env::with_repo().await;
    let gone = env.dir.path().join("gone-folder");
    let job = env.add_job("docs", &[&gone]).await;
    let out = run_job(&env, job, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows = runs(&env).await;
    assert_eq!(rows[0].status, "failed");
    let msg = rows[0].error_message.as_deref().unwrap();
    assert!(
        msg.contains(&format!("{:?}", gone.to_str().unwrap()))
            && msg.contains(&format!("restic-fleet job edit {job} --path")),
        "{msg}"
    );
}

#[tokio::test]
async fn bad_restic_args_are_recorded_as_failed_with_a_clear_message() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 1);
    let job = env.add_job("docs", &[&src]).await;
    sqlx::query("UPDATE backup_jobs SET restic_args = '{\"one-file-system\": true}' WHERE id = $1")
        .bind(job)
        .execute(&env.pool)
        .await
        .unwrap();
    let out = run_job(&env, job, &[]);
    assert_eq!(out.status.code(), Some(2));
    let rows = runs(&env).await;
    assert_eq!(rows[0].status, "failed");
    let msg = rows[0].error_message.as_deref().unwrap();
    assert!(
        msg.contains("restic_args must be a JSON array of strings"),
        "{msg}"
    );
    assert!(rows[0].end_time.is_some());
    // No backup was made.
    let snaps = env.restic(&["snapshots", "--json"]);
    assert_eq!(String::from_utf8_lossy(&snaps.stdout).trim(), "[]");
}

#[tokio::test]
async fn restic_absent_from_path_is_a_failed_run_that_says_so() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 1);
    let job = env.add_job("docs", &[&src]).await;
    let out = env
        .cmd()
        .env("PATH", "/nonexistent")
        .args(["run", &job.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let rows = runs(&env).await;
    assert_eq!(rows[0].status, "failed");
    assert!(
        rows[0]
            .error_message
            .as_deref()
            .unwrap()
            .contains("restic was not found on PATH")
    );
}

#[tokio::test]
async fn refusals_start_no_backup() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 1);
    let job = env.add_job("docs", &[&src]).await;

    let unknown = uuid::Uuid::new_v4();
    let out = run_job(&env, unknown, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("no backup job with id {unknown}")),
        "{}",
        stderr(&out)
    );

    let out = env.cmd().args(["run", "not-a-uuid"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no backup job named \"not-a-uuid\""),
        "{}",
        stderr(&out)
    );

    sqlx::query("INSERT INTO devices (id, name, platform) VALUES ('other', 'other', 'linux')")
        .execute(&env.pool)
        .await
        .unwrap();
    let foreign: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO backup_jobs (device_id, name, source_paths) VALUES ('other', 'x', ARRAY['/']) RETURNING id",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    let out = run_job(&env, foreign, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("belongs to device \"other\""),
        "{}",
        stderr(&out)
    );

    sqlx::query("UPDATE backup_jobs SET enabled = false WHERE id = $1")
        .bind(job)
        .execute(&env.pool)
        .await
        .unwrap();
    let out = run_job(&env, job, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is disabled"), "{}", stderr(&out));

    env.set_setting("repository_url", "").await;
    let out = run_job(&env, job, &["--force"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("repository_url setting is empty"),
        "{}",
        stderr(&out)
    );
    env.set_setting("repository_url", env.repo().to_str().unwrap())
        .await;
    env.set_setting("repository_password", "").await;
    let out = run_job(&env, job, &["--force"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("repository_password setting is empty"));

    assert!(
        runs(&env).await.is_empty(),
        "no run may be recorded for a refusal"
    );

    // --force runs a disabled job; device settings override global ones.
    sqlx::query(
        "INSERT INTO settings (device_id, key, value) VALUES ($1, 'repository_password', $2)",
    )
    .bind(&env.device)
    .bind(PASSWORD)
    .execute(&env.pool)
    .await
    .unwrap();
    let out = run_job(&env, job, &["--force"]);
    assert_ok(&out);
}

#[tokio::test]
async fn concurrent_runs_of_one_job_skip_and_sigterm_cancels_cleanly_without_leaking_the_password()
{
    let env = Env::with_repo().await;
    let job = slow_job(&env, "big", 30).await;

    let first = env
        .cmd()
        .args(["run", &job.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_running(&env, Duration::from_secs(30)).await;

    // A second invocation of the same job is skipped with exit code 4.
    let second = run_job(&env, job, &[]);
    assert_eq!(second.status.code(), Some(4), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("already running"),
        "{}",
        stderr(&second)
    );

    // restic's command line carries no password and no repository.
    let start = Instant::now();
    let restic = loop {
        if let Some(c) = children(first.id())
            .into_iter()
            .find(|(_, a)| a.iter().any(|x| x == "backup"))
        {
            break c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "restic child not found"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let argv = restic.1.join(" ");
    assert!(!argv.contains(PASSWORD), "{argv}");
    assert!(!argv.contains(env.repo().to_str().unwrap()), "{argv}");
    assert!(argv.contains(&format!("--tag=backup:{job}")), "{argv}");

    // Let restic take its lock and work a little, then SIGTERM the client.
    std::thread::sleep(Duration::from_millis(700));
    nix_kill(first.id(), "TERM");
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let rows = runs(&env).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, "cancelled");
    assert!(
        rows[0]
            .error_message
            .as_deref()
            .unwrap()
            .contains("SIGTERM")
    );
    let locks = env.restic(&["list", "locks", "--no-lock"]);
    assert_ok(&locks);
    assert_eq!(
        String::from_utf8_lossy(&locks.stdout).trim(),
        "",
        "restic left a lock"
    );

    // The password is nowhere in what was stored.
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runs WHERE concat(restic_output, restic_errors, error_message, metadata::text) LIKE '%' || $1 || '%'",
    )
    .bind(PASSWORD)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0);
    assert!(!stderr(&out).contains(PASSWORD) && !stdout(&out).contains(PASSWORD));
}

fn nix_kill(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

#[tokio::test]
async fn device_concurrency_limit_makes_a_run_wait_then_skip() {
    let env = Env::with_repo().await;
    env.set_setting("max_concurrent_backups", "1").await;
    env.set_setting("concurrency_wait_seconds", "1").await;
    let big_job = slow_job(&env, "big", 6).await;
    let small = env.make_source("small", 1);
    let small_job = env.add_job("small", &[&small]).await;
    let mut first = env
        .cmd()
        .args(["run", &big_job.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_running(&env, Duration::from_secs(30)).await;
    let out = run_job(&env, small_job, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("max_concurrent_backups=1"),
        "{}",
        stderr(&out)
    );
    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    // With the slot free again, the small job runs.
    assert_ok(&run_job(&env, small_job, &[]));
}

#[tokio::test]
async fn a_stale_running_row_is_closed_by_the_next_run() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 1);
    let job = env.add_job("docs", &[&src]).await;
    let stale: i32 = sqlx::query_scalar(
        "INSERT INTO runs (job_id, device_id, start_time, status, triggered_by) \
         VALUES ($1, $2, NOW() - INTERVAL '2 hours', 'running', 'schedule') RETURNING id",
    )
    .bind(job)
    .bind(&env.device)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_ok(&run_job(&env, job, &[]));
    let rows = runs(&env).await;
    let s = rows.iter().find(|r| r.id == stale).unwrap();
    assert_eq!(s.status, "failed");
    assert!(
        s.error_message
            .as_deref()
            .unwrap()
            .contains("ended without recording a result")
    );
    assert_eq!(rows.iter().filter(|r| r.status == "success").count(), 1);
}

#[tokio::test]
async fn an_unreadable_file_gives_restic_exit_3_recorded_as_a_warning() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 2);
    // /proc/1/mem cannot be opened (EACCES) even by root, so restic reads everything else and
    // exits 3: the snapshot exists but is incomplete.
    let job = env
        .add_job("docs", &[&src, std::path::Path::new("/proc/1/mem")])
        .await;
    let out = run_job(&env, job, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let rows = runs(&env).await;
    assert_eq!(rows[0].status, "success");
    assert_eq!(rows[0].exit_code, Some(3));
    let msg = rows[0].error_message.as_deref().unwrap();
    assert!(
        msg.starts_with("warning:") && msg.contains("incomplete") && msg.contains("/proc/1/mem"),
        "{msg}"
    );
    assert_eq!(rows[0].metadata.as_ref().unwrap()["incomplete"], true);
    assert!(rows[0].snapshot_id.is_some());
    assert_eq!(rows[0].files_new, Some(2));
}

#[tokio::test]
async fn a_terminal_gets_a_progress_bar_and_a_scheduler_gets_plain_log_lines() {
    let env = Env::with_repo().await;
    let job = slow_job(&env, "big", 3).await;
    // `script` gives the command a pseudo-terminal and copies what it draws.
    let cmdline = format!(
        "{} --config {} run {}",
        env!("CARGO_BIN_EXE_restic-fleet"),
        env.config_path().display(),
        job
    );
    let out = Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .env("TERM", "xterm")
        .env("RESTIC_FLEET_STATE_DIR", env.state_dir())
        .env_remove("DATABASE_URL")
        .output()
        .expect("script (util-linux) on PATH");
    assert_ok(&out);
    let screen = stdout(&out);
    assert!(
        screen.contains("ETA") && screen.contains('%') && screen.contains("files"),
        "{screen}"
    );
    assert!(screen.contains("succeeded"), "{screen}");

    // Without a terminal: plain lines, no colours, no bar.
    let out = run_job(&env, job, &[]);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(err.contains("INFO starting backup"), "{err}");
    assert!(!err.contains('\u{1b}') && !err.contains("ETA"), "{err}");
}

#[tokio::test]
async fn a_stale_lock_of_a_dead_restic_is_removed_and_the_backup_retried() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 2);
    let job = env.add_job("docs", &[&src]).await;
    leave_stale_lock(&env);
    let locks = env.restic(&["list", "locks", "--no-lock"]);
    assert!(
        !String::from_utf8_lossy(&locks.stdout).trim().is_empty(),
        "the stale lock is there"
    );

    let out = run_job(&env, job, &[]);
    assert_ok(&out);
    // Run clears this device's stale locks (`restic unlock`) before it backs up, so the
    // backup does not even meet the lock.
    let locks = env.restic(&["list", "locks", "--no-lock"]);
    assert_eq!(String::from_utf8_lossy(&locks.stdout).trim(), "");
    let rows = runs(&env).await;
    assert_eq!(rows[0].status, "success");
    assert_eq!(rows[0].files_new, Some(2));
}

/// Leaves a stale exclusive lock in the repository, as a `restic check` killed by a power cut
/// would. A real `restic check` runs; its lock file is copied from the (local) repository while
/// check holds it, and put back once check has ended: the lock then names a dead process on
/// this host, which is what makes restic call it stale. Copying makes this deterministic: on a
/// busy machine check can finish before a `restic list locks` poll ever sees its lock.
fn leave_stale_lock(env: &Env) {
    use sha2::{Digest, Sha256};
    let locks_dir = env.repo().join("locks");
    // restic names a file by the SHA-256 of its content, so a matching name means the copy is
    // whole and not a file still being written.
    let whole_lock = || -> Option<(std::ffi::OsString, Vec<u8>)> {
        for entry in std::fs::read_dir(&locks_dir).ok()?.flatten() {
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            let digest: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if entry.file_name().to_str() == Some(digest.as_str()) {
                return Some((entry.file_name(), bytes));
            }
        }
        None
    };
    for _attempt in 0..20 {
        let mut check = Command::new("restic")
            .arg("check")
            .env("RESTIC_REPOSITORY", env.repo())
            .env("RESTIC_PASSWORD", PASSWORD)
            .env("RESTIC_CACHE_DIR", env.dir.path().join("cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let caught = loop {
            let ended = check.try_wait().unwrap().is_some();
            if let Some(lock) = whole_lock() {
                break Some(lock);
            }
            if ended {
                break None;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let _ = check.kill();
        check.wait().unwrap();
        if let Some((name, bytes)) = caught {
            let path = locks_dir.join(name);
            if !path.exists() {
                std::fs::write(&path, bytes).unwrap();
            }
            return;
        }
    }
    panic!("restic check never showed a lock in 20 attempts");
}

/// Starts a run of `job`, waits until restic works, and sends restic-fleet SIGTERM.
async fn start_and_stop(env: &Env, job: uuid::Uuid) -> std::process::Child {
    let child = env
        .cmd()
        .args(["run", &job.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_running(env, Duration::from_secs(30)).await;
    let start = Instant::now();
    while !children(child.id())
        .iter()
        .any(|(_, a)| a.iter().any(|x| x == "backup"))
    {
        assert!(start.elapsed() < Duration::from_secs(20), "no restic");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(700));
    nix_kill(child.id(), "TERM");
    child
}

#[tokio::test]
async fn a_cancelled_run_is_recorded_before_its_failure_hook_runs() {
    let env = Env::with_repo().await;
    let job = slow_job(&env, "stopped", 30).await;
    let started = env.dir.path().join("hook-started");
    let cmd = format!("echo $$ > '{}'; sleep 30", started.display());
    sqlx::query("UPDATE backup_jobs SET hook_failure = $2 WHERE id = $1")
        .bind(job)
        .bind(&cmd)
        .execute(&env.pool)
        .await
        .unwrap();
    let mut child = start_and_stop(&env, job).await;
    let t0 = Instant::now();
    while std::fs::read_to_string(&started).map_or(true, |s| s.trim().is_empty()) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the failure hook never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The hook runs: the record is in already. Then the stop's grace period ends (SIGKILL).
    let rows = runs(&env).await;
    assert_eq!(rows[0].status, "cancelled", "{:?}", rows[0].error_message);
    child.kill().unwrap();
    child.wait().unwrap();
    // The hook leads its own process group: end it whole (its sleep included).
    let group = format!("-{}", std::fs::read_to_string(&started).unwrap().trim());
    let st = Command::new("kill").args(["-KILL", "--", &group]).status();
    assert!(st.unwrap().success());
    assert_eq!(runs(&env).await[0].status, "cancelled");

    // Given the time, the hook's run is added to the record.
    sqlx::query("UPDATE backup_jobs SET hook_failure = 'echo hooked' WHERE id = $1")
        .bind(job)
        .execute(&env.pool)
        .await
        .unwrap();
    let out = start_and_stop(&env, job).await.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let rows = runs(&env).await;
    let last = rows.last().unwrap();
    assert_eq!(last.status, "cancelled");
    let meta = last.metadata.clone().unwrap();
    assert_eq!(meta["hooks"][0]["stdout"], "hooked\n", "{meta}");
}

#[tokio::test]
async fn restic_holds_none_of_the_run_s_lock_files() {
    let env = Env::with_repo().await;
    let job = slow_job(&env, "locked", 20).await;
    let child = env
        .cmd()
        .args(["run", &job.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let restic = loop {
        if let Some((pid, _)) = children(child.id())
            .into_iter()
            .find(|(_, a)| a.iter().any(|x| x == "backup"))
        {
            break pid;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no restic");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(500));
    // What an ssh or rclone restic starts inherits: the run's locks must not be among it, or
    // an ssh ControlPersist master would keep the job locked after the run.
    let open_files = |pid: u32| -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .map(|p| p.display().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let ours = open_files(child.id());
    assert!(ours.iter().any(|f| f.ends_with(".lock")), "{ours:?}");
    let theirs = open_files(restic);
    assert!(!theirs.is_empty(), "restic {restic} has ended already");
    assert!(!theirs.iter().any(|f| f.ends_with(".lock")), "{theirs:?}");
    nix_kill(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
}
