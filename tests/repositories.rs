//! `repositories list|init|move`, the repository-size warning of `status` and the repository
//! metrics, against a real PostgreSQL and the real restic. The oracle for what a repository
//! holds is restic itself, opened with the password the test chose.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::Value;
use uuid::Uuid;

const OTHER: &str = "other-device";
const NEW_PW: &str = "a password of other-device alone";

async fn add_device(env: &Env, id: &str) {
    sqlx::query("INSERT INTO devices (id, name, platform) VALUES ($1, $2, 'linux')")
        .bind(id)
        .bind(format!("{id} name"))
        .execute(&env.pool)
        .await
        .unwrap();
}

async fn add_job_on(env: &Env, device: &str, name: &str, path: &Path) -> Uuid {
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

/// `restic ARGS` on the repository at `repo` with `password`.
fn restic_at(env: &Env, repo: &Path, password: &str, args: &[&str]) -> Output {
    Command::new("restic")
        .args(args)
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", password)
        .env("RESTIC_CACHE_DIR", env.dir.path().join("cache"))
        .output()
        .expect("restic")
}

/// The hosts of the snapshots in the repository at `repo`, sorted.
fn hosts_in(env: &Env, repo: &Path, password: &str) -> Vec<String> {
    let out = restic_at(env, repo, password, &["snapshots", "--json", "--no-lock"]);
    assert_ok(&out);
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut hosts: Vec<String> = list
        .iter()
        .map(|s| s["hostname"].as_str().unwrap_or("").to_string())
        .collect();
    hosts.sort();
    hosts
}

/// The repositories of `repositories list --json`, by their first device.
fn listed(env: &Env, extra: &[&str]) -> Value {
    let mut args = vec!["repositories", "list", "--json"];
    args.extend_from_slice(extra);
    let out = cli(env, &args);
    assert_ok(&out);
    json_of(&out)
}

async fn settings(env: &Env, url: &str) {
    env.set_setting("repository_url", url).await;
    env.set_setting("repository_password", PASSWORD).await;
    env.set_setting(
        "repository_cache_dir",
        env.dir.path().join("cache").to_str().unwrap(),
    )
    .await;
}

#[tokio::test]
async fn a_device_template_gives_each_device_a_repository_that_init_creates() {
    let env = Env::enrolled().await;
    add_device(&env, OTHER).await;
    let src = env.make_source("src", 2);
    let mine = add_job_on(&env, &env.device, "docs", &src).await;
    let theirs = add_job_on(&env, OTHER, "photos", &src).await;
    let base = env.dir.path().join("repos");
    settings(&env, &format!("{}/{{device_id}}", base.display())).await;

    let list = listed(&env, &[]);
    assert_eq!(list["limited"], false);
    assert_eq!(list["checked"], true);
    let repos = list["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 2, "{list}");
    for (device, job) in [(env.device.as_str(), mine), (OTHER, theirs)] {
        let r = repos
            .iter()
            .find(|r| r["devices"] == serde_json::json!([device]))
            .unwrap_or_else(|| panic!("no repository of {device}: {list}"));
        assert_eq!(r["url"], format!("{}/{device}", base.display()));
        assert_eq!(r["jobs"][0]["job_id"], job.to_string());
        assert_eq!(r["jobs"].as_array().unwrap().len(), 1);
        assert_eq!(r["maintainer"], device);
        assert_eq!(r["shared"], false);
        assert_eq!(r["exists"], false, "{r}");
        assert_eq!(r["snapshot_count"], Value::Null);
        assert_eq!(r["fingerprint"].as_str().unwrap().len(), 64);
    }
    let human = stdout(&cli(&env, &["repositories"]));
    assert!(human.contains("never counted"), "{human}");
    assert!(human.contains("repositories init"), "{human}");
    assert!(human.lines().all(|l| l.chars().count() <= 100), "{human}");

    let dry = json_of(&cli(&env, &["repositories", "init", "--dry-run", "--json"]));
    assert!(
        dry["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["action"] == "would_create"),
        "{dry}"
    );
    assert!(!base.join(OTHER).exists());

    let out = cli(&env, &["repositories", "init", "--json"]);
    assert_ok(&out);
    let init = json_of(&out);
    let actions: Vec<&str> = init["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["created", "created"], "{init}");
    for device in [env.device.as_str(), OTHER] {
        let out = restic_at(&env, &base.join(device), PASSWORD, &["snapshots", "--json"]);
        assert_ok(&out);
    }
    // The repositories are remembered with their maintainers.
    let mut rows: Vec<(Option<String>,)> =
        sqlx::query_as("SELECT maintainer_device_id FROM repositories ORDER BY 1")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    rows.sort();
    assert_eq!(
        rows,
        [(Some(OTHER.to_string()),), (Some(env.device.clone()),)]
    );

    let list = listed(&env, &[]);
    assert!(
        list["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["exists"] == true),
        "{list}"
    );
    // Idempotent: a second init creates nothing.
    let again = json_of(&cli(&env, &["repositories", "init", "--json"]));
    assert!(
        again["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["action"] == "exists"),
        "{again}"
    );
}

#[tokio::test]
async fn a_shared_repository_has_every_device_and_the_maintenance_device() {
    let env = Env::with_repo().await;
    add_device(&env, OTHER).await;
    let src = env.make_source("src", 1);
    add_job_on(&env, &env.device, "docs", &src).await;
    add_job_on(&env, OTHER, "photos", &src).await;
    env.set_setting("maintenance_device", &env.device).await;

    let list = listed(&env, &[]);
    let repos = list["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 1, "{list}");
    let r = &repos[0];
    assert_eq!(r["devices"], serde_json::json!([OTHER, env.device.clone()]));
    assert_eq!(r["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(r["shared"], true);
    assert_eq!(r["maintainer"], env.device);
    assert_eq!(r["exists"], true);
    let human = stdout(&cli(&env, &["repositories", "--no-check"]));
    assert!(
        human.contains("maintenance_device") && human.contains(&format!("({})", env.device)),
        "{human}"
    );
    assert!(human.lines().all(|l| l.chars().count() <= 100), "{human}");

    // Unchecked, and a job whose values cannot expand is a problem with its sentence.
    sqlx::query("DELETE FROM settings WHERE key = 'maintenance_device'")
        .execute(&env.pool)
        .await
        .unwrap();
    env.set_setting(
        "repository_url",
        &format!("{}/{{origin_name}}", env.dir.path().display()),
    )
    .await;
    sqlx::query("UPDATE backup_jobs SET origin_name = 'blade' WHERE device_id = $1")
        .bind(&env.device)
        .execute(&env.pool)
        .await
        .unwrap();
    let list = listed(&env, &["--no-check"]);
    assert_eq!(list["checked"], false);
    let r = &list["repositories"][0];
    assert_eq!(r["exists"], Value::Null);
    assert_eq!(r["maintainer"], Value::Null, "{list}");
    assert_eq!(r["url"], format!("{}/blade", env.dir.path().display()));
    let problems = list["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{list}");
    assert_eq!(problems[0]["device_id"], OTHER);
    assert!(
        problems[0]["reason"]
            .as_str()
            .unwrap()
            .contains("has no origin_name"),
        "{list}"
    );
}

#[tokio::test]
async fn a_viewer_lists_the_counted_repositories_without_urls() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 1);
    add_job_on(&env, &env.device, "docs", &src).await;
    assert_ok(&cli(&env, &["repositories", "init"]));
    let out = with_stdin(
        &env,
        &["db", "roles", "--database-url", &env.url],
        "admin-pw\nviewer-pw\n",
    );
    assert_ok(&out);
    let viewer = url_with_user(&env.db, "backup_viewer", "viewer-pw");
    let out = cli(&env, &["repositories", "--json", "--database-url", &viewer]);
    assert_ok(&out);
    let list = json_of(&out);
    assert_eq!(list["limited"], true, "{list}");
    let r = &list["repositories"][0];
    assert_eq!(r["url"], Value::Null);
    assert_eq!(r["maintainer"], Value::Null);
    assert!(!stdout(&out).contains(env.repo().to_str().unwrap()));
    let out = cli(&env, &["repositories", "--database-url", &viewer]);
    assert!(stdout(&out).contains("a viewer cannot read repository_url"));
    let out = cli(&env, &["repositories", "init", "--database-url", &viewer]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// Backs up `src` as `host` with the job's tag, straight with restic.
fn backup_as(env: &Env, host: &str, job: Uuid, src: &Path) {
    let tag = format!("backup:{job}");
    let out = restic_at(
        env,
        &env.repo(),
        PASSWORD,
        &[
            "backup",
            "--host",
            host,
            "--tag",
            &tag,
            src.to_str().unwrap(),
        ],
    );
    assert_ok(&out);
}

#[tokio::test]
async fn move_copies_a_device_out_of_the_shared_repository() {
    let env = Env::with_repo().await;
    add_device(&env, OTHER).await;
    let src = env.make_source("src", 3);
    let mine = add_job_on(&env, &env.device, "docs", &src).await;
    let theirs = add_job_on(&env, OTHER, "photos", &src).await;
    backup_as(&env, &env.device, mine, &src);
    backup_as(&env, OTHER, theirs, &src);
    backup_as(&env, OTHER, theirs, &src);
    let target: PathBuf = env.dir.path().join("own").join(OTHER);
    let pw_file = env.dir.path().join("new.pw");
    std::fs::write(&pw_file, format!("{NEW_PW}\n")).unwrap();

    // A URL that cannot be a repository_url is refused before anything happens.
    let out = cli(
        &env,
        &["repositories", "move", OTHER, "--to", "/srv/{host}"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let out = cli(
        &env,
        &[
            "repositories",
            "move",
            OTHER,
            "--to",
            target.to_str().unwrap(),
            "--password-file",
            pw_file.to_str().unwrap(),
            "--json",
        ],
    );
    assert_ok(&out);
    assert!(!stdout(&out).contains(NEW_PW) && !stderr(&out).contains(NEW_PW));
    assert!(!stdout(&out).contains(PASSWORD));
    let moved = json_of(&out);
    assert_eq!(moved["copies"][0]["initialized"], true, "{moved}");
    assert_eq!(moved["copies"][0]["snapshots"], 2, "{moved}");
    assert_eq!(moved["password_changed"], true);

    // The copies are in the new repository, under the new password, and only that device's.
    assert_eq!(hosts_in(&env, &target, NEW_PW), [OTHER, OTHER]);
    let out = restic_at(&env, &target, PASSWORD, &["snapshots", "--no-lock"]);
    assert!(
        !out.status.success(),
        "the old password opens the new repository"
    );
    // The originals stay in the shared repository for its retention.
    let mut before = vec![env.device.clone(), OTHER.into(), OTHER.into()];
    before.sort();
    assert_eq!(hosts_in(&env, &env.repo(), PASSWORD), before);
    // The device's own settings now name the new repository and its password.
    let own: Vec<(String, String)> =
        sqlx::query_as("SELECT key, value FROM settings WHERE device_id = $1 ORDER BY key")
            .bind(OTHER)
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(
        own,
        [
            ("repository_password".into(), NEW_PW.into()),
            ("repository_url".into(), target.to_str().unwrap().into()),
        ]
    );
    let list = listed(&env, &[]);
    let repos = list["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 2, "{list}");
    let theirs_repo = repos
        .iter()
        .find(|r| r["devices"] == serde_json::json!([OTHER]));
    let theirs_repo = theirs_repo.unwrap_or_else(|| panic!("{list}"));
    assert_eq!(theirs_repo["maintainer"], OTHER);
    assert_eq!(theirs_repo["exists"], true, "{list}");
    assert!(list["problems"].as_array().unwrap().is_empty(), "{list}");

    // Another device cannot move into that device's repository.
    let out = cli(
        &env,
        &[
            "repositories",
            "move",
            &env.device,
            "--to",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already the repository"),
        "{}",
        stderr(&out)
    );
    let switched: Option<String> = sqlx::query_scalar(
        "SELECT value FROM settings WHERE device_id = $1 AND key = 'repository_url'",
    )
    .bind(&env.device)
    .fetch_optional(&env.pool)
    .await
    .unwrap();
    assert_eq!(switched, None);

    // Moving again copies nothing twice.
    let out = cli(
        &env,
        &[
            "repositories",
            "move",
            OTHER,
            "--to",
            target.to_str().unwrap(),
        ],
    );
    assert_ok(&out);
    assert!(stdout(&out).contains("nothing to copy"), "{}", stdout(&out));
    assert_eq!(hosts_in(&env, &target, NEW_PW).len(), 2);
}

#[tokio::test]
async fn status_warns_about_a_big_repository_and_metrics_count_it() {
    let env = Env::enrolled().await;
    let fp = "ab".repeat(32);
    sqlx::query(
        "INSERT INTO repositories (fingerprint, snapshot_count, total_size, counted_at) \
         VALUES ($1, 50, 4096, NOW())",
    )
    .bind(&fp)
    .execute(&env.pool)
    .await
    .unwrap();
    env.set_setting("repository_snapshot_warning", "10").await;
    let report = json_of(&cli(&env, &["status", "--json"]));
    let warnings = report["repository_warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{report}");
    assert_eq!(warnings[0]["repository"], &fp[..12]);
    assert_eq!(warnings[0]["snapshot_count"], 50);
    assert_eq!(warnings[0]["threshold"], 10);
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(
        message.contains("{device_id}") && message.contains("50 snapshots"),
        "{message}"
    );
    let human = stdout(&cli(&env, &["status"]));
    assert!(
        human.contains("warning: repository abababababab"),
        "{human}"
    );

    let metrics = stdout(&cli(&env, &["metrics"]));
    let line = format!(
        "restic_fleet_repository_snapshots{{repository=\"{}\",maintainer=\"maintenance_device\"}} 50",
        &fp[..12]
    );
    assert!(metrics.lines().any(|l| l == line), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l == "restic_fleet_repository_snapshot_warning 10"),
        "{metrics}"
    );

    env.set_setting("repository_snapshot_warning", "50").await;
    let report = json_of(&cli(&env, &["status", "--json"]));
    assert_eq!(
        report["repository_warnings"],
        serde_json::json!([]),
        "{report}"
    );
}
