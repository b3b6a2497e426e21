//! Monitoring against real components: per-job pings and hooks around real restic backups,
//! `metrics` parsed by the official Python `prometheus_client` parser, and `status --notify`
//! posting to a real local HTTP server that records every request.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use uuid::Uuid;

/// `tests/oracle/http_recorder.py` listening on 127.0.0.1: every request is one JSON line.
struct Recorder {
    child: Child,
    port: u16,
    log: PathBuf,
    fail_file: PathBuf,
}

impl Recorder {
    fn start(env: &Env, name: &str, delay: f64) -> Recorder {
        let dir = env.dir.path().join(format!("http-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let port_file = dir.join("port");
        let log = dir.join("requests.jsonl");
        let fail_file = dir.join("fail");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/http_recorder.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(&port_file)
            .arg(&log)
            .arg("--fail-file")
            .arg(&fail_file)
            .arg("--delay")
            .arg(delay.to_string())
            .spawn()
            .expect("python3");
        let start = Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p.trim().parse().unwrap();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "recorder did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Recorder {
            child,
            port,
            log,
            fail_file,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The requests that were answered 200.
    fn accepted(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["answered"] == 200)
            .collect()
    }

    fn paths(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap(),
                    r["path"].as_str().unwrap()
                )
            })
            .collect()
    }

    fn set_down(&self, down: bool) {
        if down {
            std::fs::write(&self.fail_file, "").unwrap();
        } else {
            let _ = std::fs::remove_file(&self.fail_file);
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_job(env: &Env, job: Uuid) -> Output {
    env.cmd()
        .args(["run", &job.to_string(), "--json"])
        .output()
        .unwrap()
}

fn admin(env: &Env, args: &[&str]) -> Output {
    env.cmd()
        .args(args)
        .args(["--database-url", &env.url])
        .output()
        .unwrap()
}

async fn last_run(env: &Env) -> (String, Option<String>, Value) {
    sqlx::query_as(
        "SELECT status, error_message, COALESCE(metadata, '{}'::jsonb) FROM runs \
         ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

fn snapshot_count(env: &Env) -> usize {
    let out = env.restic(&["snapshots", "--json"]);
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn pings_hit_the_exact_path_of_each_outcome() {
    let env = Env::with_repo().await;
    let http = Recorder::start(&env, "ping", 0.0);
    let src = env.make_source("src", 3);
    let job = env.add_job("pinged", &[&src]).await;
    let base = http.url("/ping/abc-123");
    assert_ok(&admin(
        &env,
        &["job", "edit", &job.to_string(), "--ping-url", &base],
    ));

    // Success: URL/start, then URL, with the run's figures in the body.
    assert_ok(&run_job(&env, job));
    assert_eq!(
        http.paths(),
        ["POST /ping/abc-123/start", "POST /ping/abc-123"]
    );
    let body = http.requests()[1]["body"].as_str().unwrap().to_string();
    assert!(body.starts_with("status: success\n"), "{body}");
    assert!(
        body.contains("snapshot: ") && body.contains("files new: 3"),
        "{body}"
    );

    // Warnings (a missing source path): URL/fail, unless ping_warning_as_success.
    let gone = env.dir.path().join("gone");
    sqlx::query("UPDATE backup_jobs SET source_paths = $2 WHERE id = $1")
        .bind(job)
        .bind(vec![
            src.to_string_lossy().into_owned(),
            gone.to_string_lossy().into_owned(),
        ])
        .execute(&env.pool)
        .await
        .unwrap();
    let out = run_job(&env, job);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        http.paths()[2..],
        ["POST /ping/abc-123/start", "POST /ping/abc-123/fail"]
    );
    assert!(
        http.requests()[3]["body"]
            .as_str()
            .unwrap()
            .contains("status: warning")
    );
    env.set_setting("ping_warning_as_success", "true").await;
    assert_eq!(run_job(&env, job).status.code(), Some(3));
    assert_eq!(
        http.paths()[4..],
        ["POST /ping/abc-123/start", "POST /ping/abc-123"]
    );

    // Failure (no repository there): URL/fail with restic's error.
    env.set_setting(
        "repository_url",
        env.dir.path().join("nothing").to_str().unwrap(),
    )
    .await;
    assert_eq!(run_job(&env, job).status.code(), Some(1));
    assert_eq!(
        http.paths()[6..],
        ["POST /ping/abc-123/start", "POST /ping/abc-123/fail"]
    );
    let body = http.requests()[7]["body"].as_str().unwrap().to_string();
    assert!(
        body.contains("status: failed") && body.contains("error: "),
        "{body}"
    );
    // The password is never sent anywhere.
    assert!(
        http.requests()
            .iter()
            .all(|r| !r.to_string().contains(PASSWORD))
    );
}

#[tokio::test]
async fn a_ping_that_fails_never_fails_the_backup() {
    let env = Env::with_repo().await;
    let http = Recorder::start(&env, "down", 0.0);
    http.set_down(true);
    let src = env.make_source("src", 2);
    let job = env.add_job("unpinged", &[&src]).await;
    assert_ok(&admin(
        &env,
        &[
            "job",
            "edit",
            &job.to_string(),
            "--ping-url",
            &http.url("/hc/x"),
        ],
    ));
    let out = run_job(&env, job);
    assert_ok(&out);
    assert_eq!(snapshot_count(&env), 1);
    let (status, _, meta) = last_run(&env).await;
    assert_eq!(status, "success");
    let pings = meta["pings"].as_array().unwrap();
    assert_eq!(pings.len(), 2);
    assert!(pings.iter().all(|p| p["ok"] == false), "{pings:?}");
    assert!(
        pings[1]["error"].as_str().unwrap().contains("503"),
        "{pings:?}"
    );
    // Tried more than once each (retries), never with the path in the logs.
    assert!(http.requests().len() >= 4);
    assert!(!stderr(&out).contains("/hc/x"), "{}", stderr(&out));
}

#[tokio::test]
async fn ping_urls_and_hooks_are_validated_when_written() {
    let env = Env::enrolled().await;
    let job = env.add_job("v", &[Path::new("/tmp")]).await;
    for bad in ["ftp://x/y", "https://", "http://a b/"] {
        let out = admin(&env, &["job", "edit", &job.to_string(), "--ping-url", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(stderr(&out).contains("--ping-url"), "{}", stderr(&out));
    }
    let out = admin(
        &env,
        &["job", "edit", &job.to_string(), "--hook-before", " "],
    );
    assert_eq!(out.status.code(), Some(2));
    // The database refuses what the CLI would (someone writing SQL by hand).
    let res = sqlx::query(
        "INSERT INTO job_ping_urls (job_id, ping_url) VALUES ($1, 'file:///etc/passwd')",
    )
    .bind(job)
    .execute(&env.pool)
    .await;
    assert!(res.is_err());
    // The old column (migration 010) stays empty: every reader of the job row would see it.
    let res = sqlx::query("UPDATE backup_jobs SET ping_url = 'https://h/x' WHERE id = $1")
        .bind(job)
        .execute(&env.pool)
        .await;
    assert!(res.is_err());
    let res = sqlx::query("UPDATE backup_jobs SET hook_before_on_error = 'maybe' WHERE id = $1")
        .bind(job)
        .execute(&env.pool)
        .await;
    assert!(res.is_err());
    // Set, shown, cleared.
    assert_ok(&admin(
        &env,
        &[
            "job",
            "edit",
            &job.to_string(),
            "--ping-url",
            "https://hc-ping.com/secret-uuid",
            "--hook-after",
            "echo done",
        ],
    ));
    let out = admin(&env, &["job", "show", &job.to_string()]);
    let text = stdout(&out);
    assert!(
        text.contains("https://hc-ping.com/***") && !text.contains("secret-uuid"),
        "{text}"
    );
    assert!(text.contains("echo done"), "{text}");
    let stored: (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT (SELECT ping_url FROM job_ping_urls WHERE job_id = $1), \
                (SELECT ping_url FROM backup_jobs WHERE id = $1)",
    )
    .bind(job)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        stored,
        (Some("https://hc-ping.com/secret-uuid".to_string()), None)
    );
    assert_ok(&admin(
        &env,
        &[
            "job",
            "edit",
            &job.to_string(),
            "--no-ping-url",
            "--no-hook-after",
        ],
    ));
    let (url, after): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT (SELECT ping_url FROM job_ping_urls WHERE job_id = $1), hook_after \
             FROM backup_jobs WHERE id = $1",
    )
    .bind(job)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!((url, after), (None, None));
}

/// `http://127.0.0.1:PORT\@display.example/x` names display.example to a reader splitting at
/// the last `@`, but an HTTP client reads `\` as `/` and contacts 127.0.0.1. Such URLs, and
/// URLs carrying a user name or password, are refused where written and where used; a URL is
/// shown as the host it would contact.
#[tokio::test]
async fn a_url_that_names_one_host_and_contacts_another_is_refused() {
    let env = Env::with_repo().await;
    let http = Recorder::start(&env, "tricky", 0.0);
    let src = env.make_source("src", 1);
    let job = env.add_job("home", &[&src]).await;
    let tricky = format!("{}\\@display.example/x", http.url(""));
    let with_user = http.url("/x").replacen("http://", "http://user:pw@", 1);
    for (bad, why) in [
        (&tricky, "backslash"),
        (&with_user, "user name or password"),
    ] {
        let edit = ["job", "edit", &job.to_string(), "--ping-url", bad];
        let webhook = ["settings", "set", "notify_webhook_url", bad];
        let ntfy = [
            "settings",
            "set",
            "notify_ntfy_url",
            bad,
            "--device",
            &env.device,
        ];
        for args in [&edit[..], &webhook[..], &ntfy[..]] {
            let out = admin(&env, args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
        }
    }
    let written: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM job_ping_urls) + (SELECT count(*) FROM settings \
         WHERE key LIKE 'notify_%' AND value LIKE '%127.0.0.1%')",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(written, 0);

    // Rows written around the CLI: shown as the host they would reach, and never contacted.
    sqlx::query("INSERT INTO job_ping_urls (job_id, ping_url) VALUES ($1, $2)")
        .bind(job)
        .bind(&tricky)
        .execute(&env.pool)
        .await
        .unwrap();
    let out = admin(&env, &["job", "show", &job.to_string()]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains(&format!("{}/***", http.url("")))
            && !stdout(&out).contains("display.example"),
        "{}",
        stdout(&out)
    );
    assert_ok(&run_job(&env, job));
    let noted: String = sqlx::query_scalar("SELECT metadata::text FROM runs WHERE job_id = $1")
        .bind(job)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert!(noted.contains("contains a backslash"), "{noted}");
    env.set_setting("notify_webhook_url", &tricky).await;
    env.set_setting("notify_ntfy_url", &with_user).await;
    sqlx::query("UPDATE devices SET last_seen = NOW()")
        .execute(&env.pool)
        .await
        .unwrap();
    assert_eq!(notify(&env).status.code(), Some(0));
    add_failed_run(&env, job, "disk full").await;
    let out = notify(&env);
    assert!(stderr(&out).contains("backslash"), "{}", stderr(&out));
    assert!(http.requests().is_empty(), "{:?}", http.paths());
}

#[tokio::test]
async fn a_failing_before_hook_stops_the_backup() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 2);
    let job = env.add_job("guarded", &[&src]).await;
    let marker = env.dir.path().join("finally-ran");
    assert_ok(&admin(
        &env,
        &[
            "job",
            "edit",
            &job.to_string(),
            "--hook-before",
            "echo dumping; echo the dump failed >&2; exit 7",
            "--hook-finally",
            &format!("echo \"$RESTIC_FLEET_STATUS\" > '{}'", marker.display()),
        ],
    ));
    let out = run_job(&env, job);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(snapshot_count(&env), 0);
    let (status, error, meta) = last_run(&env).await;
    assert_eq!(status, "failed");
    let error = error.unwrap();
    assert!(
        error.contains("before hook")
            && error.contains("exited with code 7")
            && error.contains("the dump failed"),
        "{error}"
    );
    assert_eq!(meta["hooks"][0]["hook"], "before");
    assert_eq!(meta["hooks"][0]["stdout"], "dumping\n");
    assert_eq!(meta["hooks"][0]["exit_code"], 7);
    // finally still runs, and sees the failure.
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "failed\n");
    // `runs show` prints the hooks with their output.
    let id: i32 = sqlx::query_scalar("SELECT max(id) FROM runs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    let shown = stdout(&admin(&env, &["runs", "show", &id.to_string()]));
    assert!(
        shown.contains("hook before") && shown.contains("exited with code 7"),
        "{shown}"
    );
    assert!(shown.contains("  stderr: the dump failed"), "{shown}");

    // on-error continue: the backup happens, with a warning.
    assert_ok(&admin(
        &env,
        &[
            "job",
            "edit",
            &job.to_string(),
            "--hook-before-on-error",
            "continue",
        ],
    ));
    let out = run_job(&env, job);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(snapshot_count(&env), 1);
    let (status, error, _) = last_run(&env).await;
    assert_eq!(status, "success");
    assert!(error.unwrap().contains("before hook failed"));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "warning\n");
}

#[tokio::test]
async fn bad_restic_args_fail_the_run_before_any_hook() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 2);
    let job = env.add_job("args", &[&src]).await;
    let touched = env.dir.path().join("before-ran");
    assert_ok(&admin(
        &env,
        &[
            "job",
            "edit",
            &job.to_string(),
            "--hook-before",
            &format!("touch '{}'", touched.display()),
        ],
    ));
    // Written by plain SQL, past the allow-list of `job edit`.
    sqlx::query(
        "UPDATE backup_jobs SET restic_args = '[\"--password-command\", \"sh -c id\"]'::jsonb \
         WHERE id = $1",
    )
    .bind(job)
    .execute(&env.pool)
    .await
    .unwrap();
    let out = run_job(&env, job);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        !touched.exists(),
        "the before hook ran for a run that could not start"
    );
    assert_eq!(snapshot_count(&env), 0);
    let (status, error, meta) = last_run(&env).await;
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("--password-command"));
    assert!(meta.get("hooks").is_none(), "{meta}");
}

#[tokio::test]
async fn hook_output_never_shows_a_backend_secret() {
    let env = Env::with_repo().await;
    let secret = "s3cr3t-b2-key-0042";
    // A local repository ignores the variable; the hook's output must still not keep it.
    env.set_setting(
        "repository_environment",
        &format!("B2_ACCOUNT_KEY={secret}"),
    )
    .await;
    let src = env.make_source("src", 2);
    let job = env.add_job("b2", &[&src]).await;
    // The hook prints the secret it found elsewhere (its command line does not hold it).
    let file = env.dir.path().join("key.txt");
    std::fs::write(&file, secret).unwrap();
    let f = file.display();
    assert_ok(&admin(
        &env,
        &[
            "job",
            "edit",
            &job.to_string(),
            "--hook-before",
            &format!("echo key $(cat '{f}'); echo err $(cat '{f}') >&2"),
        ],
    ));
    let out = run_job(&env, job);
    assert_ok(&out);
    let (status, _, meta) = last_run(&env).await;
    assert_eq!(status, "success");
    let hook = &meta["hooks"][0];
    assert_eq!(hook["hook"], "before");
    assert!(
        hook["stdout"].as_str().unwrap().starts_with("key "),
        "{meta}"
    );
    assert!(!meta.to_string().contains(secret), "{meta}");
    assert!(!stderr(&out).contains(secret));
}

#[tokio::test]
async fn hooks_see_the_run_and_never_the_password() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 2);
    let job = env.add_job("env \"quoted\" name", &[&src]).await;
    let dump = env.dir.path().join("env.txt");
    let cmd = format!(
        "env | grep -E '^(RESTIC|DATABASE_URL|PG)' | sort > '{}'",
        dump.display()
    );
    assert_ok(&admin(
        &env,
        &["job", "edit", &job.to_string(), "--hook-after", &cmd],
    ));
    let out = env
        .cmd()
        .args(["run", &job.to_string(), "--json"])
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("DATABASE_URL", &env.url)
        .output()
        .unwrap();
    assert_ok(&out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = std::fs::read_to_string(&dump).unwrap();
    let vars: std::collections::BTreeMap<&str, &str> =
        text.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(vars["RESTIC_FLEET_JOB_ID"], job.to_string());
    assert_eq!(vars["RESTIC_FLEET_JOB_NAME"], "env \"quoted\" name");
    assert_eq!(vars["RESTIC_FLEET_DEVICE_ID"], env.device);
    assert_eq!(vars["RESTIC_FLEET_RUN_ID"], report["run_id"].to_string());
    assert_eq!(vars["RESTIC_FLEET_STATUS"], "success");
    assert_eq!(
        vars["RESTIC_FLEET_SNAPSHOT_ID"],
        report["snapshot_id"].as_str().unwrap()
    );
    assert_eq!(vars["RESTIC_FLEET_EXIT_CODE"], "0");
    assert_eq!(vars.get("RESTIC_FLEET_ERROR"), Some(&""));
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(!vars.contains_key("RESTIC_PASSWORD") && !vars.contains_key("DATABASE_URL"));
}

#[tokio::test]
async fn a_hook_that_outlives_its_timeout_is_killed() {
    let env = Env::with_repo().await;
    env.set_setting("hook_timeout_seconds", "1").await;
    let src = env.make_source("src", 2);
    let job = env.add_job("slow hook", &[&src]).await;
    let late = env.dir.path().join("late");
    // The shell's child (sleep) must die too, or it would write the file later.
    let cmd = format!("sleep 5; touch '{}'", late.display());
    assert_ok(&admin(
        &env,
        &["job", "edit", &job.to_string(), "--hook-before", &cmd],
    ));
    let started = Instant::now();
    let out = run_job(&env, job);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let (_, error, meta) = last_run(&env).await;
    assert!(error.unwrap().contains("did not finish within 1s"));
    assert_eq!(meta["hooks"][0]["timed_out"], true);
    std::thread::sleep(Duration::from_secs(6));
    assert!(!late.exists(), "the hook's child survived the timeout");
    assert_eq!(snapshot_count(&env), 0);
}

/// Sets `hook` as the job's `which` hook (`--hook-before` etc.).
fn set_hook(env: &Env, job: Uuid, which: &str, cmd: &str) {
    assert_ok(&admin(
        env,
        &[
            "job",
            "edit",
            &job.to_string(),
            &format!("--hook-{which}"),
            cmd,
        ],
    ));
}

/// Whether process `pid` still exists (a zombie counts: nobody reaped it).
fn process_exists(pid: &str) -> bool {
    Path::new(&format!("/proc/{}", pid.trim())).exists()
}

/// Waits for a hook to write a pid into `file`, then returns it.
fn pid_in(file: &Path) -> String {
    let pid = std::fs::read_to_string(file).unwrap();
    assert!(pid.trim().parse::<u32>().is_ok(), "{pid:?}");
    pid
}

#[tokio::test]
async fn a_hook_printing_100_mb_keeps_restic_fleet_small() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 2);
    let job = env.add_job("loud hook", &[&src]).await;
    set_hook(
        &env,
        job,
        "before",
        "head -c 100000000 /dev/zero | tr '\\0' x; echo END",
    );
    // The finally hook reads restic-fleet's peak resident size (its shell's parent).
    set_hook(&env, job, "finally", "grep VmHWM /proc/$PPID/status");
    let out = run_job(&env, job);
    assert_ok(&out);
    let (status, _, meta) = last_run(&env).await;
    assert_eq!(status, "success");
    let before = meta["hooks"][0]["stdout"].as_str().unwrap();
    assert!(
        before.starts_with("[...]x") && before.ends_with("xxEND\n"),
        "{:.40}",
        before
    );
    assert!(before.len() <= 8 * 1024 + 5, "{}", before.len());
    let peak = meta["hooks"][1]["stdout"].as_str().unwrap();
    let kib: u64 = peak
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{peak:?}"));
    assert!(kib < 32 * 1024, "restic-fleet peaked at {kib} KiB: {peak}");
}

#[tokio::test]
async fn a_hook_leaves_no_process_behind_even_a_setsid_one() {
    let env = Env::with_repo().await;
    env.set_setting("hook_timeout_seconds", "30").await;
    let src = env.make_source("src", 2);
    let job = env.add_job("leaky hook", &[&src]).await;
    let (setsid_pid, bg_pid) = (env.dir.path().join("setsid"), env.dir.path().join("bg"));
    // The escaped child keeps the hook's stdout open; the hook itself exits 0 at once.
    let cmd = format!(
        "setsid sh -c 'echo $$ > {f}; exec sleep 600' & \
         while [ ! -s {f} ]; do sleep 0.05; done; sleep 60 & echo $! > {g}; echo done",
        f = setsid_pid.display(),
        g = bg_pid.display()
    );
    set_hook(&env, job, "before", &cmd);
    let started = Instant::now();
    let out = run_job(&env, job);
    assert_ok(&out);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let (status, _, meta) = last_run(&env).await;
    assert_eq!(status, "success", "{meta}");
    assert_eq!(meta["hooks"][0]["exit_code"], 0);
    assert_eq!(meta["hooks"][0]["stdout"], "done\n");
    assert_eq!(snapshot_count(&env), 1);
    let (a, b) = (pid_in(&setsid_pid), pid_in(&bg_pid));
    assert!(
        !process_exists(&a),
        "the setsid child {a} survived the hook"
    );
    assert!(
        !process_exists(&b),
        "the background child {b} survived the hook"
    );

    // The same after a timeout.
    env.set_setting("hook_timeout_seconds", "1").await;
    std::fs::remove_file(&setsid_pid).unwrap();
    let cmd = format!(
        "setsid sh -c 'echo $$ > {f}; exec sleep 600' & sleep 30",
        f = setsid_pid.display()
    );
    set_hook(&env, job, "before", &cmd);
    let started = Instant::now();
    let out = run_job(&env, job);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(20));
    let (_, _, meta) = last_run(&env).await;
    assert_eq!(meta["hooks"][0]["timed_out"], true);
    let a = pid_in(&setsid_pid);
    assert!(
        !process_exists(&a),
        "the setsid child {a} survived the timeout"
    );
}

/// Runs the Python parser over `text`; panics with its error if the text is not valid.
fn parse_metrics(text: &str) -> Vec<Value> {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/parse_metrics.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn samples<'a>(families: &'a [Value], name: &str) -> Vec<&'a Value> {
    families
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .filter(|s| s["name"] == name)
        .collect()
}

#[tokio::test]
async fn metrics_parse_with_hostile_names_and_match_status() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 4);
    let hostile = "quote\" back\\slash\nnew line {a=\"b\"} # x";
    let job = env.add_job("plain", &[&src]).await;
    let weird: Uuid = sqlx::query_scalar(
        "INSERT INTO backup_jobs (device_id, name, source_paths) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(&env.device)
    .bind(hostile)
    .bind(vec![src.to_string_lossy().into_owned()])
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_ok(&run_job(&env, job));
    sqlx::query("UPDATE devices SET last_seen = NOW() WHERE id = $1")
        .bind(&env.device)
        .execute(&env.pool)
        .await
        .unwrap();

    let out = admin(&env, &["metrics"]);
    assert_ok(&out);
    let fams = parse_metrics(&stdout(&out));
    for f in &fams {
        assert!(!f["help"].as_str().unwrap().is_empty(), "{f}");
        assert_eq!(f["type"], "gauge");
    }
    // The hostile name round-trips exactly through the escaping.
    let verdicts = samples(&fams, "restic_fleet_job_verdict");
    let of = |id: Uuid| -> Vec<(String, f64)> {
        verdicts
            .iter()
            .filter(|s| s["labels"]["job_id"] == id.to_string())
            .map(|s| {
                (
                    s["labels"]["verdict"].as_str().unwrap().to_string(),
                    s["value"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert!(verdicts.iter().any(|s| s["labels"]["job"] == hostile));
    // Exactly the verdict `status --json` reports is 1.
    let status = admin(&env, &["status", "--json"]);
    let report: Value = serde_json::from_slice(&status.stdout).unwrap();
    for j in report["jobs"].as_array().unwrap() {
        let id: Uuid = j["job_id"].as_str().unwrap().parse().unwrap();
        let ones: Vec<String> = of(id)
            .into_iter()
            .filter(|(_, v)| *v == 1.0)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(ones, [j["verdict"].as_str().unwrap()], "{j}");
    }
    assert_eq!(
        of(weird).iter().find(|(_, v)| *v == 1.0).unwrap().0,
        "never_run"
    );

    // Figures of the last run, with the labels the issue names.
    let files = samples(&fams, "restic_fleet_job_last_run_files_new");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["value"], 4.0);
    assert_eq!(files[0]["labels"]["device"], env.device);
    assert_eq!(files[0]["labels"]["job"], "plain");
    let success = samples(&fams, "restic_fleet_job_last_success_timestamp_seconds");
    let end: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT end_time FROM runs WHERE job_id = $1")
            .bind(job)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    let ts = success[0]["value"].as_f64().unwrap();
    assert!(
        (ts - end.timestamp_millis() as f64 / 1000.0).abs() < 0.002,
        "{ts} vs {end}"
    );
    let last = samples(&fams, "restic_fleet_job_last_run_timestamp_seconds");
    assert_eq!(last[0]["labels"]["status"], "success");
    assert!(!samples(&fams, "restic_fleet_job_last_run_added_bytes").is_empty());
    assert!(!samples(&fams, "restic_fleet_job_last_run_duration_seconds").is_empty());
    let seen = samples(&fams, "restic_fleet_device_last_seen_timestamp_seconds");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["labels"]["device"], env.device);

    // --output writes the same families atomically, readable by another user.
    let file = env.dir.path().join("textfile").join("restic_fleet.prom");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    assert_ok(&admin(
        &env,
        &["metrics", "--output", file.to_str().unwrap()],
    ));
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(parse_metrics(&written).len(), fams.len());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let leftovers: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    // --device for an unknown device is a usage error.
    assert_eq!(
        admin(&env, &["metrics", "--device", "nope"]).status.code(),
        Some(2)
    );

    // Maintenance: without an owner, only the verdict `not_configured` is 1 and no
    // step has a last success.
    let maintenance_verdicts = |fams: &[Value]| -> Vec<String> {
        let all = samples(fams, "restic_fleet_maintenance_verdict");
        assert_eq!(all.len(), 5, "{all:?}");
        all.iter()
            .filter(|s| s["value"] == 1.0)
            .map(|s| s["labels"]["verdict"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(maintenance_verdicts(&fams), ["not_configured"]);
    assert!(
        samples(
            &fams,
            "restic_fleet_maintenance_last_success_timestamp_seconds"
        )
        .is_empty()
    );
    // With an owner and a history: each step's last success as recorded, and the verdict
    // `status --json` gives (the check's newest run failed, so `failing`).
    env.set_setting("maintenance_device", &env.device).await;
    sqlx::query(
        "INSERT INTO maintenance_runs (device_id, step, start_time, end_time, status) VALUES \
           ($1, 'forget', NOW() - interval '3 hours', NOW() - interval '170 minutes', 'success'), \
           ($1, 'prune', NOW() - interval '2 hours', NOW() - interval '110 minutes', 'success'), \
           ($1, 'check', NOW() - interval '5 hours', NOW() - interval '290 minutes', 'success'), \
           ($1, 'check', NOW() - interval '1 hour', NOW() - interval '50 minutes', 'failed')",
    )
    .bind(&env.device)
    .execute(&env.pool)
    .await
    .unwrap();
    let out = admin(&env, &["metrics"]);
    assert_ok(&out);
    let fams = parse_metrics(&stdout(&out));
    let status: Value = serde_json::from_slice(&admin(&env, &["status", "--json"]).stdout).unwrap();
    assert_eq!(status["maintenance"]["verdict"], "failing", "{status}");
    assert_eq!(maintenance_verdicts(&fams), ["failing"]);
    let steps = samples(
        &fams,
        "restic_fleet_maintenance_last_success_timestamp_seconds",
    );
    assert_eq!(steps.len(), 3, "{steps:?}");
    for step in ["forget", "prune", "check"] {
        let end: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
            "SELECT max(end_time) FROM maintenance_runs WHERE step = $1 AND status = 'success'",
        )
        .bind(step)
        .fetch_one(&env.pool)
        .await
        .unwrap();
        let got = steps
            .iter()
            .find(|s| s["labels"]["step"] == step)
            .unwrap_or_else(|| panic!("no sample for {step}"))["value"]
            .as_f64()
            .unwrap();
        assert!(
            (got - end.timestamp_millis() as f64 / 1000.0).abs() < 0.002,
            "{step}: {got} vs {end}"
        );
    }
}

async fn add_failed_run(env: &Env, job: Uuid, msg: &str) {
    sqlx::query(
        "INSERT INTO runs (job_id, device_id, start_time, end_time, status, error_message) \
         VALUES ($1, $2, NOW(), NOW(), 'failed', $3)",
    )
    .bind(job)
    .bind(&env.device)
    .bind(msg)
    .execute(&env.pool)
    .await
    .unwrap();
}

async fn add_success_run(env: &Env, job: Uuid) {
    sqlx::query(
        "INSERT INTO runs (job_id, device_id, start_time, end_time, status) \
         VALUES ($1, $2, NOW(), NOW(), 'success')",
    )
    .bind(job)
    .bind(&env.device)
    .execute(&env.pool)
    .await
    .unwrap();
}

fn notify(env: &Env) -> Output {
    admin(env, &["status", "--notify", "--json"])
}

#[tokio::test]
async fn notify_sends_each_change_once_and_retries_a_target_that_was_down() {
    let env = Env::enrolled().await;
    let http = Recorder::start(&env, "hook", 0.0);
    env.set_setting("notify_webhook_url", &http.url("/webhook/t0ken"))
        .await;
    env.set_setting("notify_ntfy_url", &http.url("/ntfy/backups"))
        .await;
    sqlx::query("UPDATE devices SET last_seen = NOW()")
        .execute(&env.pool)
        .await
        .unwrap();
    let job = env.add_job("docs", &[Path::new("/srv/docs")]).await;
    add_success_run(&env, job).await;

    // All ok: nothing to say.
    let out = notify(&env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(http.requests().is_empty(), "{:?}", http.paths());
    // stdout stays pure JSON.
    serde_json::from_slice::<Value>(&out.stdout).unwrap();

    // The job fails: one webhook and one ntfy message.
    add_failed_run(&env, job, "disk \"full\"").await;
    assert_eq!(notify(&env).status.code(), Some(1));
    let reqs = http.requests();
    assert_eq!(reqs.len(), 2, "{:?}", http.paths());
    let hook = reqs.iter().find(|r| r["path"] == "/webhook/t0ken").unwrap();
    assert_eq!(hook["method"], "POST");
    assert_eq!(hook["headers"]["content-type"], "application/json");
    let body: Value = serde_json::from_str(hook["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["event"], "problem");
    assert_eq!(body["kind"], "job");
    assert_eq!(body["job"], "docs");
    assert_eq!(body["job_id"], job.to_string());
    assert_eq!(body["device"], env.device);
    assert_eq!(body["verdict"], "failing");
    // The first call recorded the job as ok.
    assert_eq!(body["previous_verdict"], "ok");
    assert!(body["reason"].as_str().unwrap().contains("disk \"full\""));
    assert!(body["last_success_at"].is_string());
    assert!(body["run_id"].is_i64());
    let ntfy = reqs.iter().find(|r| r["path"] == "/ntfy/backups").unwrap();
    assert_eq!(
        ntfy["headers"]["title"],
        "backup docs on test-device is failing"
    );
    assert_eq!(ntfy["headers"]["priority"], "high");
    assert!(ntfy["body"].as_str().unwrap().contains("disk \"full\""));

    // Nothing changed: nothing sent.
    assert_eq!(notify(&env).status.code(), Some(1));
    assert_eq!(http.requests().len(), 2);

    // Back to ok while the targets are down: the exit code still says ok, a warning is printed,
    // and the change stays unsent.
    add_success_run(&env, job).await;
    http.set_down(true);
    let out = notify(&env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("could not notify"),
        "{}",
        stderr(&out)
    );
    assert!(http.accepted().len() == 2);
    // Up again: the resolution arrives, once per target.
    http.set_down(false);
    assert_eq!(notify(&env).status.code(), Some(0));
    assert_eq!(notify(&env).status.code(), Some(0));
    let accepted = http.accepted();
    assert_eq!(accepted.len(), 4, "{:?}", http.paths());
    let resolved: Value = serde_json::from_str(
        accepted[2..]
            .iter()
            .find(|r| r["path"] == "/webhook/t0ken")
            .unwrap()["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(resolved["event"], "resolved");
    assert_eq!(resolved["verdict"], "ok");
    assert_eq!(resolved["previous_verdict"], "failing");

    // A deleted job is forgotten (its state rows go), and says nothing.
    sqlx::query("DELETE FROM backup_jobs WHERE id = $1")
        .bind(job)
        .execute(&env.pool)
        .await
        .unwrap();
    assert_eq!(notify(&env).status.code(), Some(0));
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notification_state WHERE subject = 'job:' || $1::text",
    )
    .bind(job)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(rows, 0);
    assert_eq!(http.accepted().len(), 4, "{:?}", http.paths());
}

#[tokio::test]
async fn an_offline_device_is_notified_and_two_concurrent_calls_send_once() {
    let env = Env::enrolled().await;
    // A slow target, so that the two calls overlap.
    let http = Recorder::start(&env, "slow", 1.0);
    env.set_setting("notify_webhook_url", &http.url("/w")).await;
    sqlx::query("UPDATE devices SET last_seen = NOW() - INTERVAL '2 days'")
        .execute(&env.pool)
        .await
        .unwrap();
    let a = env.add_job("a", &[Path::new("/a")]).await;
    let b = env.add_job("b", &[Path::new("/b")]).await;
    add_failed_run(&env, a, "boom a").await;
    add_failed_run(&env, b, "boom b").await;

    let spawn = || {
        env.cmd()
            .args(["status", "--notify", "--json", "--database-url", &env.url])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (c1, c2) = (spawn(), spawn());
    let (o1, o2) = (
        c1.wait_with_output().unwrap(),
        c2.wait_with_output().unwrap(),
    );
    assert_eq!(o1.status.code(), Some(1), "{}", stderr(&o1));
    assert_eq!(o2.status.code(), Some(1), "{}", stderr(&o2));
    let mut subjects: Vec<String> = http
        .requests()
        .iter()
        .map(|r| {
            let b: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            format!(
                "{} {}",
                b["kind"].as_str().unwrap(),
                b["verdict"].as_str().unwrap()
            ) + &b["job"]
                .as_str()
                .map(|j| format!(" {j}"))
                .unwrap_or_default()
        })
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        ["device offline", "job failing a", "job failing b"]
    );
}

#[tokio::test]
async fn relica_hooks_run() {
    let env = Env::with_repo().await;
    // The fixture's `end` hook calls /usr/bin/endpoint-watcher; point it at a recording script.
    let bin = env.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let called = env.dir.path().join("watcher.log");
    let watcher = bin.join("endpoint-watcher");
    std::fs::write(
        &watcher,
        format!(
            "#!/bin/sh\necho \"$* $RESTIC_FLEET_STATUS\" >> '{}'\n",
            called.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&watcher, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/relica/relica-account-info.json"
    ))
    .unwrap()
    .replace("/usr/bin/endpoint-watcher", watcher.to_str().unwrap());
    let file = env.dir.path().join("relica.json");
    std::fs::write(&file, fixture).unwrap();
    let out = admin(&env, &["relica-migrate", file.to_str().unwrap()]);
    assert_ok(&out);
    // Move the imported job to this device with a local source, then run it.
    let job = "8abc492b-cfff-4c78-9202-f85bdcf4714a";
    let src = env.make_source("home", 2);
    assert_ok(&admin(
        &env,
        &[
            "job",
            "edit",
            job,
            "--device",
            &env.device,
            "--path",
            src.to_str().unwrap(),
        ],
    ));
    sqlx::query("UPDATE backup_jobs SET exclude_patterns = NULL WHERE id = $1::uuid")
        .bind(job)
        .execute(&env.pool)
        .await
        .unwrap();
    let out = env.cmd().args(["run", job]).output().unwrap();
    assert_ok(&out);
    assert_eq!(
        std::fs::read_to_string(&called).unwrap(),
        "device1 relica-backup-end home success\n"
    );
}

#[tokio::test]
async fn sigint_during_a_hook_stops_it_and_the_run() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 2);
    let job = env.add_job("interrupted", &[&src]).await;
    let late = env.dir.path().join("late");
    let started = env.dir.path().join("started");
    let cmd = format!(
        "touch '{}'; sleep 20; touch '{}'",
        started.display(),
        late.display()
    );
    assert_ok(&admin(
        &env,
        &[
            "job",
            "edit",
            &job.to_string(),
            "--hook-before",
            &cmd,
            "--hook-before-on-error",
            "continue",
            "--hook-finally",
            "touch never",
        ],
    ));
    let child = env
        .cmd()
        .args(["run", &job.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !started.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the hook never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let (status, error, meta) = last_run(&env).await;
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("received SIGINT"));
    // Even with on-error continue nothing was backed up, and no further hook ran.
    assert_eq!(snapshot_count(&env), 0);
    assert_eq!(meta["hooks"].as_array().unwrap().len(), 1);
    std::thread::sleep(Duration::from_secs(1));
    assert!(!late.exists());
}
