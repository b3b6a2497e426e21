//! Repository URL templates with real restic: `/{device_id}` gives two enrolled devices (each
//! with its own database role and its own repository password) two repositories; each backs
//! up into its own, online and from its local copy, and neither password opens the other's
//! repository. A repository that does not exist fails the run with one sentence naming
//! `restic-fleet repositories init`; templates and values that cannot make a URL, and a
//! device's own repository another device writes, are refused at `settings set` and `job edit`
//! (exit 2, nothing changed).
//!
//! Device ids are unique per test: roles are cluster-wide and tests run in parallel.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

/// An enrolled device: its id and its own config file.
struct Device {
    id: String,
    config: PathBuf,
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// `db roles` with the shared test passwords (as tests/security.rs gives them).
fn make_roles(env: &Env) {
    let admin = env.dir.path().join("admin.pw");
    let viewer = env.dir.path().join("viewer.pw");
    std::fs::write(&admin, "admin-pw\n").unwrap();
    std::fs::write(&viewer, "viewer-pw\n").unwrap();
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

/// `device enroll`, then `init` on "the machine" (its own config and state) with the URL.
fn enroll(env: &Env, id: &str) -> Device {
    let out = env
        .cmd()
        .args(["device", "enroll", id, "--platform", "linux", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let dev = Device {
        id: id.to_string(),
        config: env.dir.path().join(format!("{id}.toml")),
    };
    let url = v["database_url"].as_str().unwrap();
    let out = as_device(env, &dev)
        .args(["init", "--database-url", url, "--device-id", id])
        .output()
        .unwrap();
    assert_ok(&out);
    dev
}

/// The binary on `dev`'s machine: its config and its own state directory.
fn as_device(env: &Env, dev: &Device) -> Command {
    let mut c = env.cmd();
    c.env("RESTIC_FLEET_CONFIG", &dev.config)
        .env(
            "RESTIC_FLEET_STATE_DIR",
            env.dir.path().join(format!("state-{}", dev.id)),
        )
        .stdin(Stdio::null());
    c
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

/// restic on `repo` with `password`.
fn restic_on(env: &Env, repo: &Path, password: &str, args: &[&str]) -> Output {
    Command::new("restic")
        .args(args)
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", password)
        .env("RESTIC_CACHE_DIR", env.dir.path().join("cache"))
        .output()
        .expect("restic")
}

/// The hosts of the snapshots in `repo`, opened with `password`.
fn hosts_in(env: &Env, repo: &Path, password: &str) -> Vec<String> {
    let out = restic_on(env, repo, password, &["snapshots", "--json", "--no-lock"]);
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["hostname"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Every settings row, as text (the oracle that a refused `settings set` changed nothing).
async fn settings_rows(env: &Env) -> String {
    sqlx::query_scalar(
        "SELECT COALESCE(string_agg(concat_ws('|', device_id, key, value), E'\\n' \
         ORDER BY id), '') FROM settings",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

#[tokio::test]
async fn a_device_template_gives_each_device_a_repository_only_it_can_open() {
    let env = Env::enrolled().await;
    make_roles(&env);
    let a = enroll(&env, &unique("tpl-a"));
    let b = enroll(&env, &unique("tpl-b"));
    let base = env.dir.path().join("repos");
    let template = format!("{}/{{device_id}}", base.display());
    let set = env
        .cmd()
        .args(["settings", "set", "repository_url", &template])
        .output()
        .unwrap();
    assert_ok(&set);
    env.set_setting(
        "repository_cache_dir",
        env.dir.path().join("cache").to_str().unwrap(),
    )
    .await;
    let password = |d: &Device| format!("password of {}", d.id);
    for d in [&a, &b] {
        let out = with_stdin(
            &env,
            &[
                "settings",
                "set",
                "repository_password",
                "-",
                "--device",
                &d.id,
            ],
            &password(d),
        );
        assert_ok(&out);
    }
    let job_a = add_job_for(&env, &a.id, "home", &env.make_source("src-a", 2)).await;
    let job_b = add_job_for(&env, &b.id, "home", &env.make_source("src-b", 2)).await;
    let (repo_a, repo_b) = (base.join(&a.id), base.join(&b.id));

    // No repository yet: one sentence naming it and the command that creates it, recorded.
    let out = as_device(&env, &a)
        .args(["run", &job_a.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stdout(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let msg = report["error_message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(&format!("no repository at {}", repo_a.display()))
            && msg.contains("`restic-fleet repositories init`")
            && !msg.contains('\n'),
        "{msg}"
    );
    let stored: String = sqlx::query_scalar(
        "SELECT error_message FROM runs WHERE job_id = $1 AND status = 'failed'",
    )
    .bind(job_a)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(stored, msg);

    // Each device's repository, with its own password; each device backs up into its own.
    for (d, repo) in [(&a, &repo_a), (&b, &repo_b)] {
        assert_ok(&restic_on(&env, repo, &password(d), &["init", "--quiet"]));
    }
    for (d, job) in [(&a, job_a), (&b, job_b)] {
        let out = as_device(&env, d)
            .args(["run", &job.to_string()])
            .output()
            .unwrap();
        assert_ok(&out);
    }
    assert_eq!(hosts_in(&env, &repo_a, &password(&a)), vec![a.id.clone()]);
    assert_eq!(hosts_in(&env, &repo_b, &password(&b)), vec![b.id.clone()]);
    // Neither password opens the other's repository.
    for (repo, wrong) in [(&repo_b, password(&a)), (&repo_a, password(&b))] {
        let out = restic_on(&env, repo, &wrong, &["snapshots", "--no-lock"]);
        assert!(!out.status.success(), "{}", stdout(&out));
        assert!(stderr(&out).contains("wrong password"), "{}", stderr(&out));
    }

    // `snapshots` lists each device's repository and says where each snapshot came from.
    let out = env.cmd().args(["snapshots", "--json"]).output().unwrap();
    assert_ok(&out);
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut seen: Vec<(String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["hostname"].as_str().unwrap().to_string(),
                r["repository"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    let mut want = vec![
        (a.id.clone(), repo_a.display().to_string()),
        (b.id.clone(), repo_b.display().to_string()),
    ];
    want.sort();
    assert_eq!(seen, want);
    let out = as_device(&env, &b).args(["snapshots", "--json"]).output();
    let out = out.unwrap();
    assert_ok(&out);
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["hostname"], b.id.as_str());

    // A's own repository_url naming B's repository is refused: B writes there.
    let before = settings_rows(&env).await;
    let out = env
        .cmd()
        .args(["settings", "set", "repository_url"])
        .arg(repo_b.to_str().unwrap())
        .args(["--device", &a.id])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("device {:?} writes to it too", b.id)),
        "{}",
        stderr(&out)
    );
    assert_eq!(settings_rows(&env).await, before);

    // Offline, from the local copy that sync wrote: the template still gives A its own.
    let bin = fake_tool(&env, "systemctl", "").0;
    let out = as_device(&env, &a)
        .env("PATH", path_with(&bin))
        .args(["sync", "--unit-dir"])
        .arg(env.dir.path().join("units-a"))
        .output()
        .unwrap();
    assert_ok(&out);
    let out = as_device(&env, &a)
        .env("DATABASE_URL", "postgres://nobody:x@127.0.0.1:1/none")
        .args(["run", &job_a.to_string(), "--json"])
        .output()
        .unwrap();
    assert_ok(&out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["spooled"].is_string(), "{report}");
    assert_eq!(
        hosts_in(&env, &repo_a, &password(&a)),
        vec![a.id.clone(), a.id.clone()]
    );
    assert_eq!(hosts_in(&env, &repo_b, &password(&b)), vec![b.id.clone()]);
}

#[tokio::test]
async fn templates_and_values_that_cannot_make_a_url_are_refused() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 1);
    let job = env.add_job("home", &[&src]).await;
    sqlx::query("UPDATE backup_jobs SET origin_name = 'a/b' WHERE id = $1")
        .bind(job)
        .execute(&env.pool)
        .await
        .unwrap();
    let before = settings_rows(&env).await;
    let base = env.dir.path().join("t");
    for (template, says) in [
        (
            format!("{}/{{host}}", base.display()),
            "unknown placeholder {host}",
        ),
        (
            format!("{}/x{{device_id}}", base.display()),
            "right before {device_id}",
        ),
        (
            format!("{}/{{origin_name}}", base.display()),
            "the origin_name \"a/b\" of job",
        ),
        (
            format!("{}/{{account_id}}", base.display()),
            "has no account_id",
        ),
    ] {
        for device in [None, Some(env.device.as_str())] {
            let mut cmd = env.cmd();
            cmd.args(["settings", "set", "repository_url", &template]);
            if let Some(d) = device {
                cmd.args(["--device", d]);
            }
            let out = cmd.output().unwrap();
            assert_eq!(code(&out), Some(2), "{template}: {}", stderr(&out));
            assert!(stderr(&out).contains(says), "{template}: {}", stderr(&out));
            assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
            assert_eq!(settings_rows(&env).await, before, "{template}");
        }
    }

    // With a template using the origin, a job edit that breaks it is refused; a fitting one
    // is taken.
    sqlx::query("UPDATE backup_jobs SET origin_name = 'laptop' WHERE id = $1")
        .bind(job)
        .execute(&env.pool)
        .await
        .unwrap();
    let template = format!("{}/{{origin_name}}", base.display());
    let out = env
        .cmd()
        .args(["settings", "set", "repository_url", &template])
        .output()
        .unwrap();
    assert_ok(&out);
    let out = env
        .cmd()
        .args(["job", "edit", &job.to_string(), "--origin-name", "../etc"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be part of a repository URL"),
        "{}",
        stderr(&out)
    );
    let origin: Option<String> =
        sqlx::query_scalar("SELECT origin_name FROM backup_jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(origin.as_deref(), Some("laptop"));
    let out = env
        .cmd()
        .args(["job", "edit", &job.to_string(), "--origin-name", "desk"])
        .output()
        .unwrap();
    assert_ok(&out);

    // A job the template cannot place (a row written around the CLI) fails its run with the
    // sentence, recorded, before restic starts.
    sqlx::query("UPDATE backup_jobs SET origin_name = NULL WHERE id = $1")
        .bind(job)
        .execute(&env.pool)
        .await
        .unwrap();
    let out = env
        .cmd()
        .args(["run", &job.to_string(), "--json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "failed");
    assert!(
        report["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("has no origin_name") && m.contains("--origin-name")),
        "{report}"
    );
}
