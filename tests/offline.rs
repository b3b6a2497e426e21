//! Backups while the database is away, exactly-once delivery, exclusion by file locks, no
//! orphans, reconciliation and stale repository locks. Real restic throughout; the
//! outage tests stop and start a private PostgreSQL of their own (`pg_ctl stop -m immediate`),
//! never the cluster the other tests share.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A PostgreSQL cluster of one test, on a fixed port so it can be stopped and started again.
struct PrivatePg {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
}

fn as_owner(cmd: &Path) -> Command {
    if nix_is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(cmd);
        c
    } else {
        Command::new(cmd)
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PrivatePg {
    fn start_new() -> PrivatePg {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("pg_ctl").exists())
            .max()
            .expect("a PostgreSQL version with pg_ctl");
        let dir = tempfile::Builder::new()
            .prefix("rf-private-pg")
            .tempdir()
            .unwrap();
        if nix_is_root() {
            let st = Command::new("chown")
                .args(["postgres:", dir.path().to_str().unwrap()])
                .status()
                .unwrap();
            assert!(st.success());
        }
        let out = as_owner(&bin.join("initdb"))
            .args(["-D", dir.path().join("data").to_str().unwrap()])
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .output()
            .unwrap();
        assert_ok(&out);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePg { dir, port, bin };
        pg.start();
        pg
    }

    fn start(&self) {
        let dir = self.dir.path();
        let out = as_owner(&self.bin.join("pg_ctl"))
            .args(["-D", dir.join("data").to_str().unwrap()])
            .args(["-l", dir.join("server.log").to_str().unwrap()])
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
                self.port,
                dir.display()
            ))
            .arg("start")
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert_ok(&out);
    }

    /// What a crash or a pulled cable looks like to clients: every connection dies at once.
    fn stop(&self) {
        let out = as_owner(&self.bin.join("pg_ctl"))
            .args(["-D", self.dir.path().join("data").to_str().unwrap()])
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .unwrap();
        assert_ok(&out);
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = as_owner(&self.bin.join("pg_ctl"))
            .args(["-D", self.dir.path().join("data").to_str().unwrap()])
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn run_job(env: &Env, job: uuid::Uuid, extra: &[&str]) -> std::process::Output {
    env.cmd()
        .arg("run")
        .arg(job.to_string())
        .args(extra)
        .output()
        .unwrap()
}

/// `sync --json` with a fake systemctl and a unit directory of the test; the report.
fn sync(env: &Env) -> Value {
    let (bin, _log) = fake_tool(env, "systemctl", "");
    let units = env.dir.path().join("units");
    let (code, report) = sync_json(
        env,
        &bin,
        &["--no-catch-up", "--unit-dir", units.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{report:#}");
    report
}

/// A job whose backup takes about `mib` seconds: incompressible data through restic's own
/// `--limit-upload` of 1 MiB/s.
async fn slow_job(env: &Env, name: &str, mib: usize) -> uuid::Uuid {
    slow_job_at(env, name, mib, 1024).await
}

/// The same at `kib_per_s` KiB/s.
async fn slow_job_at(env: &Env, name: &str, mib: usize, kib_per_s: usize) -> uuid::Uuid {
    use std::io::Write;
    let src = env.make_source(name, 1);
    let mut f = std::io::BufWriter::new(std::fs::File::create(src.join("big.bin")).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (mib as u64);
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
    sqlx::query("UPDATE backup_jobs SET restic_args = $2 WHERE id = $1")
        .bind(job)
        .bind(serde_json::json!([format!("--limit-upload={kib_per_s}")]))
        .execute(&env.pool)
        .await
        .unwrap();
    job
}

fn snapshots(env: &Env) -> Vec<Value> {
    let out = env.restic(&["snapshots", "--json", "--no-lock"]);
    assert_ok(&out);
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn repo_locks(env: &Env) -> Vec<String> {
    let out = env.restic(&["list", "locks", "--no-lock"]);
    assert_ok(&out);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn spool_files(env: &Env) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(env.state_dir().join("spool"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "json"));
    v.sort();
    v
}

/// Waits until `pid` has a child whose command line contains `backup`; its pid.
fn restic_child(pid: u32, timeout: Duration) -> u32 {
    let start = Instant::now();
    loop {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
                continue;
            };
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            // restic itself (argv[0]), not another child such as the sleep inhibitor, whose
            // arguments mention the backup too.
            let program = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            if ppid == pid
                && program.ends_with(b"restic")
                && String::from_utf8_lossy(&cmdline).contains("backup")
            {
                return child;
            }
        }
        assert!(start.elapsed() < timeout, "no restic child of {pid}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Alive and not a zombie waiting for a parent to reap it.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            !after.starts_with('Z') && !after.starts_with('X')
        }
        Err(_) => false,
    }
}

fn kill(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

async fn wait_for_running(env: &Env) -> i32 {
    let start = Instant::now();
    loop {
        let id: Option<i32> =
            sqlx::query_scalar("SELECT id FROM runs WHERE status = 'running' LIMIT 1")
                .fetch_optional(&env.pool)
                .await
                .unwrap();
        if let Some(id) = id {
            return id;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no running row");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The database away and no local copy yet: a failure (exit 1, as the README's table says),
/// whether the job is named by UUID or by name, never a usage error.
#[tokio::test]
async fn with_the_database_down_and_no_local_copy_a_run_fails_with_exit_1() {
    let env = Env::enrolled().await;
    let job = env.add_job("docs", &[env.dir.path()]).await;
    for name in [job.to_string(), "docs".to_string()] {
        let out = env
            .cmd()
            .env("DATABASE_URL", "postgres://nobody:x@127.0.0.1:1/none")
            .args(["run", &name])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains("no local copy") && err.contains("sync"),
            "{name}: {err}"
        );
    }
}

#[tokio::test]
async fn with_the_database_down_a_run_backs_up_from_the_local_copy_and_is_delivered_once() {
    let pg = PrivatePg::start_new();
    let env = Env::with_repo_on(&pg.admin_url()).await;
    let src = env.make_source("docs", 3);
    let job = env.add_job("docs", &[&src]).await;
    add_cron(&env, job, "0 3 * * *").await;

    let report = sync(&env);
    let copy_path = PathBuf::from(report["local_copy"].as_str().unwrap());
    assert_eq!(copy_path, env.state_dir().join("local-copy.json"));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the local copy holds the repository password");
    }
    let copy: Value = serde_json::from_slice(&std::fs::read(&copy_path).unwrap()).unwrap();
    assert_eq!(copy["jobs"][0]["id"], job.to_string());
    assert_eq!(copy["schedules"][0]["cron_expression"], "0 3 * * *");

    pg.stop();
    let started = Instant::now();
    let out = run_job(&env, job, &["--json"]);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("spooled") && err.contains("local copy") && err.contains("old"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "an unreachable database is noticed at once"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "success");
    assert!(report["run_id"].is_null());
    let snaps = snapshots(&env);
    assert_eq!(
        snaps.len(),
        1,
        "the backup was made although the database is down"
    );
    assert!(
        same_snapshot(report["snapshot_id"].as_str(), snaps[0]["id"].as_str()),
        "{report}"
    );

    // A job the local copy does not know fails with one sentence.
    let unknown = uuid::Uuid::new_v4();
    let out = run_job(&env, unknown, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not in the local copy"),
        "{}",
        stderr(&out)
    );

    let listed = env
        .cmd()
        .args(["spool", "list", "--json"])
        .output()
        .unwrap();
    assert_ok(&listed);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["client_run_id"], report["client_run_id"]);
    assert_eq!(listed[0]["status"], "success");
    let files = spool_files(&env);
    assert_eq!(files.len(), 1);
    let spooled = std::fs::read(&files[0]).unwrap();

    pg.start();
    let out = env
        .cmd()
        .args(["spool", "deliver", "--json"])
        .output()
        .unwrap();
    assert_ok(&out);
    let delivered: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(delivered["delivered"][0]["new_row"], true);
    assert!(spool_files(&env).is_empty());

    let row: (uuid::Uuid, String, Option<String>, chrono::DateTime<chrono::Utc>, Value) =
        sqlx::query_as(
            "SELECT client_run_id, status, snapshot_id, start_time, metadata FROM runs WHERE job_id = $1",
        )
        .bind(job)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(row.0.to_string(), report["client_run_id"]);
    assert_eq!(row.1, "success");
    assert!(
        same_snapshot(row.2.as_deref(), snaps[0]["id"].as_str()),
        "{:?}",
        row.2
    );
    let original: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(report["start_time"].clone()).unwrap();
    assert_eq!(row.3, original, "the row keeps the run's original start");
    assert_eq!(row.4["recorded_offline"], true, "{}", row.4);
    assert!(row.4["delivered_at"].is_string());
    // The schedule moved on as if the run had been recorded live.
    let (last, next): (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) = sqlx::query_as("SELECT last_run_at, next_run_at FROM schedules WHERE job_id = $1")
        .bind(job)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(last, Some(original));
    assert!(next.unwrap() > original);

    // A crash between the commit and the removal of the file: the record comes again.
    std::fs::write(&files[0], &spooled).unwrap();
    let report = sync(&env);
    assert_eq!(report["spool_delivered"].as_array().unwrap().len(), 1);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 1, "a record delivered twice is one row");
    assert!(spool_files(&env).is_empty());
}

#[tokio::test]
async fn the_database_stopped_during_a_backup_loses_nothing() {
    let pg = PrivatePg::start_new();
    let env = Env::with_repo_on(&pg.admin_url()).await;
    let job = slow_job(&env, "big", 8).await;
    sync(&env);
    let child = env
        .cmd()
        .args(["run", &job.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run_id = wait_for_running(&env).await;
    pg.stop();
    let stopped = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("spooled"), "{}", stderr(&out));
    assert!(
        stopped.elapsed() < Duration::from_secs(60),
        "the end of the backup does not wait long for the database"
    );
    assert_eq!(spool_files(&env).len(), 1);

    pg.start();
    let report = sync(&env);
    assert_eq!(report["spool_delivered"], serde_json::json!([run_id]));
    let (status, snapshot, meta): (String, Option<String>, Value) =
        sqlx::query_as("SELECT status, snapshot_id, metadata FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(status, "success");
    let snaps = snapshots(&env);
    assert_eq!(snaps.len(), 1);
    assert_eq!(snapshot.as_deref(), snaps[0]["id"].as_str());
    assert_eq!(meta["recorded_offline"], true);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// Spawns `n` runs of `job` at once; their exit codes.
fn simultaneous_runs(env: &Env, job: uuid::Uuid, n: usize) -> Vec<Option<i32>> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            env.cmd()
                .args(["run", &job.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|mut c| c.wait().unwrap().code())
        .collect()
}

#[tokio::test]
async fn twenty_simultaneous_runs_make_one_backup_with_the_database_up_and_down() {
    let pg = PrivatePg::start_new();
    let env = Env::with_repo_on(&pg.admin_url()).await;
    let job = slow_job(&env, "big", 12).await;
    sync(&env);

    for phase in ["up", "down"] {
        if phase == "down" {
            pg.stop();
        }
        let codes = simultaneous_runs(&env, job, 20);
        let ok = codes.iter().filter(|c| **c == Some(0)).count();
        let skipped = codes.iter().filter(|c| **c == Some(4)).count();
        assert_eq!((ok, skipped), (1, 19), "database {phase}: {codes:?}");
    }
    assert_eq!(snapshots(&env).len(), 2);
    pg.start();
    sync(&env);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE status = 'success'")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn kill_9_of_the_client_takes_restic_with_it_and_sync_closes_the_run() {
    let env = Env::with_repo().await;
    // restic removes its lock through a backend connection, which waits for an upload in
    // flight; restic's limiter makes that upload (a pack of a few MiB) as slow as it makes the
    // backup, so this backup is slowed less and made longer instead.
    let job = slow_job_at(&env, "big", 96, 8192).await;
    let mut child = env
        .cmd()
        .args(["run", &job.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let run_id = wait_for_running(&env).await;
    let restic = restic_child(child.id(), Duration::from_secs(20));
    // During the backup proper: restic holds its repository lock. (A signal that lands while
    // restic is still creating the lock can leave it behind; the next run or sync removes such
    // a lock, see the test below.)
    let start = Instant::now();
    while repo_locks(&env).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "restic took no lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    kill(child.id(), "KILL");
    child.wait().unwrap();
    let killed = Instant::now();
    while alive(restic) {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "restic {restic} outlived its parent by 5 s: {}\n{}",
            std::fs::read_to_string(format!("/proc/{restic}/stat")).unwrap_or_default(),
            std::fs::read_to_string(format!("/proc/{restic}/status")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // restic got SIGINT, so it removed its own lock.
    assert!(repo_locks(&env).is_empty(), "{:?}", repo_locks(&env));
    let report = sync(&env);
    assert_eq!(report["stale_runs_closed"], serde_json::json!([run_id]));
    let (status, msg): (String, Option<String>) =
        sqlx::query_as("SELECT status, error_message FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(msg.unwrap().contains("no snapshot of it was found"));
}

#[tokio::test]
async fn a_run_whose_process_died_after_restic_finished_is_recovered_with_its_snapshot() {
    let env = Env::with_repo().await;
    let src = env.make_source("docs", 2);
    let job = env.add_job("docs", &[&src]).await;
    // An older snapshot of the job that another row already claims, then the dead run's own.
    let old_run: i32 = sqlx::query_scalar(
        "INSERT INTO runs (job_id, device_id, start_time, status, triggered_by) \
         VALUES ($1, $2, NOW() - INTERVAL '1 hour', 'running', 'schedule') RETURNING id",
    )
    .bind(job)
    .bind(&env.device)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    let dead_run: i32 = sqlx::query_scalar(
        "INSERT INTO runs (job_id, device_id, start_time, status, triggered_by) \
         VALUES ($1, $2, NOW() - INTERVAL '2 seconds', 'running', 'schedule') RETURNING id",
    )
    .bind(job)
    .bind(&env.device)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    let out = env.restic(&[
        "backup",
        "--json",
        "--host",
        &env.device,
        "--tag",
        &format!("backup:{job}"),
        src.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let snap = snapshots(&env)[0]["id"].as_str().unwrap().to_string();

    let report = sync(&env);
    let mut closed: Vec<i64> = report["stale_runs_closed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    closed.sort();
    assert_eq!(closed, vec![i64::from(old_run), i64::from(dead_run)]);
    let rows: Vec<(i32, String, Option<String>, Value)> =
        sqlx::query_as("SELECT id, status, snapshot_id, metadata FROM runs ORDER BY id")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    // The older run's window ends where the dead run began, so only the dead run gets the
    // snapshot; the older one is closed as failed.
    assert_eq!(rows[0].1, "failed", "{rows:?}");
    assert_eq!(rows[1].1, "success", "{rows:?}");
    assert_eq!(rows[1].2.as_deref(), Some(snap.as_str()));
    assert_eq!(rows[1].3["recovered"], true);
    assert!(rows[1].3["note"].as_str().unwrap().contains("recovered"));
}

#[tokio::test]
async fn locks_of_a_killed_restic_are_removed_by_the_next_sync() {
    let env = Env::with_repo().await;
    let job = slow_job(&env, "big", 30).await;
    let mut child = env
        .cmd()
        .args(["run", &job.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let restic = restic_child(child.id(), Duration::from_secs(20));
    let start = Instant::now();
    while repo_locks(&env).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "restic took no lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(restic, "KILL");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "the run failed");
    assert_eq!(repo_locks(&env).len(), 1, "a killed restic leaves its lock");
    sync(&env);
    assert!(repo_locks(&env).is_empty(), "{:?}", repo_locks(&env));
}

#[tokio::test]
async fn a_run_killed_while_the_database_was_down_is_closed_from_its_spooled_start() {
    let pg = PrivatePg::start_new();
    let env = Env::with_repo_on(&pg.admin_url()).await;
    let job = slow_job(&env, "big", 30).await;
    sync(&env);
    pg.stop();
    let mut child = env
        .cmd()
        .args(["run", &job.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    restic_child(child.id(), Duration::from_secs(20));
    let files = spool_files(&env);
    assert_eq!(files.len(), 1, "the run's start is in the spool");
    let start: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(start["status"], "running");
    kill(child.id(), "KILL");
    child.wait().unwrap();
    // restic finished after all (as if the kill came a moment later): its snapshot is there.
    let src = env.dir.path().join("big");
    let out = env.restic(&[
        "backup",
        "--host",
        &env.device,
        "--tag",
        &format!("backup:{job}"),
        src.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let snap = snapshots(&env)[0]["id"].as_str().unwrap().to_string();

    pg.start();
    let report = sync(&env);
    assert_eq!(report["spool_delivered"].as_array().unwrap().len(), 1);
    assert!(spool_files(&env).is_empty());
    let rows: Vec<(String, Option<String>, Value)> =
        sqlx::query_as("SELECT status, snapshot_id, metadata FROM runs")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "success", "{rows:?}");
    assert_eq!(rows[0].1.as_deref(), Some(snap.as_str()));
    assert_eq!(rows[0].2["recovered"], true);
    assert_eq!(rows[0].2["recorded_offline"], true);
}

#[tokio::test]
async fn a_database_restart_during_a_backup_neither_doubles_nor_loses_the_run() {
    let pg = PrivatePg::start_new();
    let env = Env::with_repo_on(&pg.admin_url()).await;
    let job = slow_job(&env, "big", 10).await;
    let first = env
        .cmd()
        .args(["run", &job.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run_id = wait_for_running(&env).await;
    pg.stop();
    pg.start();
    // The job lock is a file, not a database session: the restart released nothing.
    let second = run_job(&env, job, &[]);
    assert_eq!(second.status.code(), Some(4), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("already running"),
        "{}",
        stderr(&second)
    );
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The first run reconnected and recorded its result live.
    assert!(spool_files(&env).is_empty(), "{}", stderr(&out));
    let rows: Vec<(i32, String, Option<String>)> =
        sqlx::query_as("SELECT id, status, snapshot_id FROM runs")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    let snaps = snapshots(&env);
    assert_eq!(snaps.len(), 1);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].0, rows[0].1.as_str()), (run_id, "success"));
    assert!(
        same_snapshot(rows[0].2.as_deref(), snaps[0]["id"].as_str()),
        "{rows:?}"
    );
}

/// A stored snapshot id names restic's snapshot: the full id, or (restic before 0.17 reports
/// only the short one, resolved by the next sync) its 8-character prefix.
fn same_snapshot(stored: Option<&str>, full: Option<&str>) -> bool {
    match (stored, full) {
        (Some(s), Some(f)) => s.len() >= 8 && f.starts_with(s),
        _ => false,
    }
}

#[tokio::test]
async fn a_run_holds_one_database_connection_and_no_advisory_lock() {
    let env = Env::with_repo().await;
    let job = slow_job(&env, "big", 6).await;
    let mut child = env
        .cmd()
        .args(["run", &job.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_running(&env).await;
    restic_child(child.id(), Duration::from_secs(20));
    let (connections, advisory): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'restic-fleet'), \
                (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(connections, 1, "run keeps one connection");
    assert_eq!(advisory, 0, "no session state: locks are files");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// A finished record of run `id` of `job`, as `run` spools it, ending `end` (minutes past the
/// start).
fn spooled_record(env: &Env, id: uuid::Uuid, job: uuid::Uuid, status: &str, end: i64) -> Value {
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-05T10:00:00Z").unwrap();
    serde_json::json!({
        "client_run_id": id, "job_id": job, "job_name": "spooled", "device_id": env.device,
        "start_time": start, "end_time": start + chrono::Duration::minutes(end),
        "status": status, "error_message": (status == "failed").then_some("forged"),
        "triggered_by": "schedule", "metadata": {"recorded_offline": true},
    })
}

/// Writes `records` into the spool under the names given, delivers it, and returns the row.
async fn deliver_files(env: &Env, id: uuid::Uuid, records: &[(&str, &Value)]) -> (String, String) {
    let dir = env.state_dir().join("spool");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, r) in records {
        std::fs::write(dir.join(name), serde_json::to_vec(r).unwrap()).unwrap();
    }
    assert_ok(&env.cmd().args(["spool", "deliver"]).output().unwrap());
    assert!(spool_files(env).is_empty(), "{:?}", spool_files(env));
    sqlx::query_as(
        "SELECT status, to_char(end_time AT TIME ZONE 'UTC', 'HH24:MI') FROM runs \
         WHERE client_run_id = $1",
    )
    .bind(id)
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn two_spooled_records_of_one_run_give_the_same_row_in_either_file_order() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 1);
    let job = env.add_job("spooled", &[&src]).await;
    let mut rows = Vec::new();
    for success_first in [true, false] {
        let id = uuid::Uuid::new_v4();
        // The success ended later: it has the later state, whichever file sorts first.
        let success = spooled_record(&env, id, job, "success", 5);
        let failed = spooled_record(&env, id, job, "failed", 2);
        let (a, b) = (format!("a-{id}.json"), format!("b-{id}.json"));
        let files = if success_first {
            [(a.as_str(), &success), (b.as_str(), &failed)]
        } else {
            [(a.as_str(), &failed), (b.as_str(), &success)]
        };
        rows.push(deliver_files(&env, id, &files).await);
        // The start of the run under another name never replaces its finished record either.
        let mut start = spooled_record(&env, id, job, "running", 0);
        start["end_time"] = Value::Null;
        let (status, _) = deliver_files(&env, id, &[(&format!("0-{id}.json"), &start)]).await;
        assert_eq!(status, "success");
    }
    assert_eq!(rows[0], rows[1]);
    assert_eq!(rows[0], ("success".to_string(), "10:05".to_string()));

    // A forged `failed` record under an earlier name does not replace a delivered success.
    let id = uuid::Uuid::new_v4();
    let success = spooled_record(&env, id, job, "success", 5);
    deliver_files(&env, id, &[(&format!("5-{id}.json"), &success)]).await;
    let forged = spooled_record(&env, id, job, "failed", 9);
    let row = deliver_files(&env, id, &[(&format!("0-{id}.json"), &forged)]).await;
    assert_eq!(row, ("success".to_string(), "10:05".to_string()));
}
