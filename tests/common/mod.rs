//! Test harness: a fresh database per test on the private cluster that scripts/test.sh starts,
//! a temporary config, a local restic repository, and the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgPool};

pub const PASSWORD: &str = "correct horse battery staple";

pub fn admin_url() -> String {
    std::env::var("RESTIC_FLEET_TEST_PG").expect(
        "RESTIC_FLEET_TEST_PG is not set: run the tests with scripts/test.sh, which starts a \
         private PostgreSQL",
    )
}

/// `postgres://user@host:port/db` with the database replaced.
pub fn url_for(db: &str) -> String {
    let base = admin_url();
    let cut = base.rfind('/').expect("url has a path");
    format!("{}/{}", &base[..cut], db)
}

pub fn url_with_user(db: &str, user: &str, password: &str) -> String {
    url_for(db).replacen(
        "postgres://postgres@",
        &format!("postgres://{user}:{password}@"),
        1,
    )
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: String,
    pub url: String,
    pub device: String,
    pub pool: PgPool,
}

impl Env {
    /// A new empty database (not migrated) and a temp dir.
    pub async fn empty() -> Env {
        Env::empty_on(&admin_url()).await
    }

    /// The same on another cluster (a private one a test stops and starts), given by the
    /// superuser URL of its `postgres` database.
    pub async fn empty_on(admin_url: &str) -> Env {
        let db = format!("rf_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connect admin");
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut admin)
            .await
            .expect("create database");
        admin.close().await.ok();
        let cut = admin_url.rfind('/').expect("url has a path");
        let url = format!("{}/{}", &admin_url[..cut], db);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .expect("pool");
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            db,
            url,
            device: "test-device".into(),
            pool,
        }
    }

    /// A migrated database with this device enrolled through `init`.
    pub async fn enrolled() -> Env {
        Env::enrolled_on(&admin_url()).await
    }

    pub async fn enrolled_on(admin_url: &str) -> Env {
        let env = Env::empty_on(admin_url).await;
        let out = env
            .cmd()
            .args([
                "init",
                "--database-url",
                &env.url,
                "--device-id",
                &env.device,
            ])
            .output()
            .unwrap();
        assert_ok(&out);
        env
    }

    /// Enrolled, with a restic repository initialised and configured in the settings.
    pub async fn with_repo() -> Env {
        Env::with_repo_on(&admin_url()).await
    }

    pub async fn with_repo_on(admin_url: &str) -> Env {
        let env = Env::enrolled_on(admin_url).await;
        let repo = env.repo();
        let out = Command::new("restic")
            .args(["init", "--quiet"])
            .env("RESTIC_REPOSITORY", &repo)
            .env("RESTIC_PASSWORD", PASSWORD)
            .output()
            .expect("restic on PATH");
        assert_ok(&out);
        env.set_setting("repository_url", repo.to_str().unwrap())
            .await;
        env.set_setting("repository_password", PASSWORD).await;
        env.set_setting(
            "repository_cache_dir",
            env.dir.path().join("cache").to_str().unwrap(),
        )
        .await;
        env
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// The state directory the binary uses in this test.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// The binary with a clean environment: the test's config, no inherited overrides.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_restic-fleet"));
        c.env_remove("DATABASE_URL")
            .env_remove("RESTIC_FLEET_DEVICE_ID")
            .env_remove("RESTIC_PASSWORD")
            .env_remove("RESTIC_REPOSITORY")
            .env("RESTIC_FLEET_CONFIG", self.config_path())
            // Each test's own state directory (local copy, spool, lock files).
            .env("RESTIC_FLEET_STATE_DIR", self.state_dir())
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"))
            .env("HOME", self.dir.path());
        c
    }

    pub async fn set_setting(&self, key: &str, value: &str) {
        sqlx::query(
            "INSERT INTO settings (device_id, key, value) VALUES (NULL, $1, $2) \
             ON CONFLICT (key) WHERE device_id IS NULL DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .expect("set setting");
    }

    /// A source folder with a few files.
    pub fn make_source(&self, name: &str, files: usize) -> PathBuf {
        let src = self.dir.path().join(name);
        std::fs::create_dir_all(&src).unwrap();
        for i in 0..files {
            std::fs::write(
                src.join(format!("file{i}.txt")),
                format!("content {i} {name}"),
            )
            .unwrap();
        }
        src
    }

    /// Inserts a job for this device; returns its id.
    pub async fn add_job(&self, name: &str, paths: &[&Path]) -> uuid::Uuid {
        let paths: Vec<String> = paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        sqlx::query_scalar(
            "INSERT INTO backup_jobs (device_id, name, source_paths) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(&self.device)
        .bind(name)
        .bind(paths)
        .fetch_one(&self.pool)
        .await
        .expect("insert job")
    }

    pub fn restic(&self, args: &[&str]) -> Output {
        Command::new("restic")
            .args(args)
            .env("RESTIC_REPOSITORY", self.repo())
            .env("RESTIC_PASSWORD", PASSWORD)
            .env("RESTIC_CACHE_DIR", self.dir.path().join("cache"))
            .output()
            .expect("restic")
    }
}

/// The version of the restic on PATH, as (major, minor, patch): the tests run against several
/// (scripts/test.sh), and some of restic's answers differ between them.
pub fn restic_version() -> (u32, u32, u32) {
    let out = Command::new("restic")
        .arg("version")
        .output()
        .expect("restic on PATH");
    let text = String::from_utf8_lossy(&out.stdout);
    let number = text.split_whitespace().nth(1).expect("restic version");
    let mut parts = number.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .unwrap_or(0)
    });
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "command failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A directory with a recording fake `name` (a shell script appending its arguments to the
/// returned log, one call a line) after running `precheck` (shell code, may be empty).
pub fn fake_tool(env: &Env, name: &str, precheck: &str) -> (PathBuf, PathBuf) {
    let bin = env.dir.path().join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = env.dir.path().join(format!("{name}.log"));
    let script = bin.join(name);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{precheck}\nprintf '%s\\n' \"$*\" >> '{}'\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, log)
}

/// PATH with `bin` first.
pub fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The calls a fake tool recorded.
pub fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The sorted `name`s of a sync report's list `key` (added, updated, ...).
pub fn names(report: &serde_json::Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = report[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

pub async fn add_cron(env: &Env, job: uuid::Uuid, expr: &str) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO schedules (job_id, schedule_type, cron_expression) VALUES ($1, 'cron', $2) RETURNING id",
    )
    .bind(job)
    .bind(expr)
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

pub async fn add_interval(env: &Env, job: uuid::Uuid, secs: i32) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO schedules (job_id, schedule_type, interval_seconds) VALUES ($1, 'interval', $2) RETURNING id",
    )
    .bind(job)
    .bind(secs)
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

/// The stored `next_run_at` of the job's (only) schedule, rounded up to a whole second as
/// timers and tasks carry it.
pub async fn whole_second_slot(env: &Env, job: uuid::Uuid) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar(
        "SELECT date_trunc('second', next_run_at + INTERVAL '999999 microseconds') \
         FROM schedules WHERE job_id = $1",
    )
    .bind(job)
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

/// The change both sync backends are tested with: `daily`'s 02:30 schedule moves to 03:45,
/// and the job `deleted` is deleted.
pub async fn move_a_schedule_and_delete_a_job(env: &Env, daily: uuid::Uuid, deleted: uuid::Uuid) {
    sqlx::query(
        "UPDATE schedules SET cron_expression = '45 3 * * *' \
         WHERE job_id = $1 AND cron_expression = '30 2 * * *'",
    )
    .bind(daily)
    .execute(&env.pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM backup_jobs WHERE id = $1")
        .bind(deleted)
        .execute(&env.pool)
        .await
        .unwrap();
}

/// The unit/task name of a job.
pub fn stem(job: uuid::Uuid) -> String {
    format!("restic-fleet-job-{job}")
}

/// Runs the binary with `args`, feeding `input` on standard input.
pub fn with_stdin(env: &Env, args: &[&str], input: &str) -> Output {
    with_stdin_on(env.cmd(), args, input)
}

/// `cmd ARGS` with `input` on standard input.
pub fn with_stdin_on(mut cmd: Command, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Compares `actual` with the golden file `tests/golden/<name>`; `UPDATE_GOLDEN=1` rewrites it.
pub fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "golden file {} missing (UPDATE_GOLDEN=1 writes it)",
            path.display()
        )
    });
    assert_eq!(actual, want, "golden file {name} differs");
}

/// `restic-fleet sync --json ARGS` with the fake tools of `bin` first on PATH: exit code and
/// report.
pub fn sync_json(env: &Env, bin: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = env
        .cmd()
        .env("PATH", path_with(bin))
        .args(["sync", "--json"])
        .args(args)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("sync --json: {e}\n{}\n{}", stdout(&out), stderr(&out)));
    (out.status.code(), report)
}

/// The PATH systemd gives a service (its compiled-in default).
pub const SYSTEMD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin";

/// A recording fake `systemctl` that also does what systemd would do for
/// `start [--no-block] restic-fleet-catchup@JOB.service`: it runs the template unit's
/// `ExecStart=` (with `%i` = JOB) under `env -i`, with only what systemd gives a unit: PATH,
/// INVOCATION_ID and the `CacheDirectory=` it creates (`$CACHE_DIRECTORY`, under `cache_base`).
/// The call is logged before the run; the fake exits with the run's exit code.
pub fn fake_systemd(env: &Env, units: &Path, cache_base: &Path) -> (PathBuf, PathBuf) {
    let bin = env.dir.path().join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = env.dir.path().join("systemctl.log");
    let script = bin.join("systemctl");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
printf '%s\n' "$*" >> '{log}'
for a in "$@"; do
  case "$a" in
    restic-fleet-catchup@*.service)
      inst=${{a#restic-fleet-catchup@}}; inst=${{inst%.service}}
      line=$(sed -n 's/^ExecStart=//p' '{units}/restic-fleet-catchup@.service' | sed "s/%i/$inst/g; s/%%/%/g")
      mkdir -p '{cache}/restic-fleet'
      eval "env -i PATH='{path}' INVOCATION_ID=0123 CACHE_DIRECTORY='{cache}/restic-fleet' $line" >/dev/null 2>&1
      exit $?;;
  esac
done
exit 0
"#,
            log = log.display(),
            units = units.display(),
            cache = cache_base.display(),
            path = SYSTEMD_PATH,
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, log)
}

/// The binary with `args`, run in `env`.
pub fn cli(env: &Env, args: &[&str]) -> Output {
    env.cmd().args(args).output().unwrap()
}

/// The command's standard output as JSON, or a panic that shows both outputs.
pub fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}); exit {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            stdout(out),
            stderr(out)
        )
    })
}
