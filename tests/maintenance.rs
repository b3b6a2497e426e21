//! Retention, `maintain` on one owner, `snapshots` and `restore`, against a real PostgreSQL
//! and the real restic. The oracle for what is left in the repository is restic itself
//! (`restic snapshots --json`, `restic check`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use uuid::Uuid;

const OTHER: &str = "other-device";

/// `maintenance_runs`: step, status, exit code, snapshots removed, device.
type StepRow = (String, String, Option<i32>, Option<i32>, String);

async fn add_device(env: &Env, id: &str) {
    sqlx::query("INSERT INTO devices (id, name, platform) VALUES ($1, $2, 'linux')")
        .bind(id)
        .bind(format!("{id} name"))
        .execute(&env.pool)
        .await
        .unwrap();
}

async fn add_job_on(env: &Env, device: &str, name: &str, paths: &[&Path]) -> Uuid {
    let paths: Vec<String> = paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    sqlx::query_scalar(
        "INSERT INTO backup_jobs (device_id, name, source_paths) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(device)
    .bind(name)
    .bind(paths)
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

/// `restic-fleet run JOB` as `device` (the config's device id overridden).
fn run_as(env: &Env, device: &str, job: Uuid) -> Output {
    env.cmd()
        .env("RESTIC_FLEET_DEVICE_ID", device)
        .args(["run", &job.to_string()])
        .output()
        .unwrap()
}

/// The repository's snapshots per `backup:` tag, oldest first, from restic itself.
fn snapshots_by_job(env: &Env) -> BTreeMap<String, Vec<(String, String)>> {
    let out = env.restic(&["snapshots", "--json", "--no-lock"]);
    assert_ok(&out);
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut by: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut list = list;
    list.sort_by(|a, b| a["time"].as_str().cmp(&b["time"].as_str()));
    for s in list {
        let tag = s["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|t| t.starts_with("backup:"))
            .unwrap_or("none")
            .to_string();
        by.entry(tag).or_default().push((
            s["id"].as_str().unwrap().to_string(),
            s["hostname"].as_str().unwrap().to_string(),
        ));
    }
    by
}

fn ids(v: &[(String, String)]) -> Vec<String> {
    v.iter().map(|(id, _)| id.clone()).collect()
}

#[tokio::test]
async fn maintain_keeps_each_jobs_policy_and_touches_nothing_else() {
    let env = Env::with_repo().await;
    add_device(&env, OTHER).await;
    let src_a = env.make_source("a", 2);
    let src_a2 = env.make_source("a2", 1);
    let src_b = env.make_source("b", 2);
    let src_c = env.make_source("c", 2);
    let a = env.add_job("A keep-last 2", &[&src_a]).await;
    let b = env.add_job("B no policy", &[&src_b]).await;
    let c = add_job_on(&env, OTHER, "C keep-last 1", &[&src_c]).await;
    for i in 0..5 {
        if i == 3 {
            // A's paths change: restic's default grouping (host, paths) would make a second
            // group that keeps its own "last 2".
            sqlx::query("UPDATE backup_jobs SET source_paths = $2 WHERE id = $1")
                .bind(a)
                .bind(vec![
                    src_a.to_string_lossy().into_owned(),
                    src_a2.to_string_lossy().into_owned(),
                ])
                .execute(&env.pool)
                .await
                .unwrap();
        }
        std::fs::write(src_a.join("changing.txt"), format!("a{i}")).unwrap();
        std::fs::write(src_b.join("changing.txt"), format!("b{i}")).unwrap();
        std::fs::write(src_c.join("changing.txt"), format!("c{i}")).unwrap();
        for (dev, job) in [
            (env.device.as_str(), a),
            (env.device.as_str(), b),
            (OTHER, c),
        ] {
            let out = run_as(&env, dev, job);
            assert_ok(&out);
        }
    }
    // A snapshot tagged for a job the database does not know (a deleted job).
    let ghost = Uuid::new_v4();
    let out = env.restic(&[
        "backup",
        "--quiet",
        "--host",
        OTHER,
        "--tag",
        &format!("backup:{ghost}"),
        src_c.to_str().unwrap(),
    ]);
    assert_ok(&out);
    // A snapshot with A's tag but another host must never count as A's.
    let out = env.restic(&[
        "backup",
        "--quiet",
        "--host",
        OTHER,
        "--tag",
        &format!("backup:{a}"),
        src_c.to_str().unwrap(),
    ]);
    assert_ok(&out);

    // Policies through the CLI.
    assert_ok(&cli(
        &env,
        &["job", "edit", &a.to_string(), "--keep-last", "2"],
    ));
    assert_ok(&cli(
        &env,
        &["job", "edit", &c.to_string(), "--keep-last", "1"],
    ));
    let show = json_of(&cli(&env, &["job", "show", &a.to_string(), "--json"]));
    assert_eq!(show["retention"]["keep_last"], 2, "{show:#}");
    assert_eq!(show["retention"]["source"], "job");
    let show = json_of(&cli(&env, &["job", "show", &b.to_string(), "--json"]));
    assert_eq!(show["retention"]["source"], "none", "{show:#}");
    assert_eq!(show["retention"]["description"], "keep everything");

    let before = snapshots_by_job(&env);
    let tag = |j: Uuid| format!("backup:{j}");
    assert_eq!(before[&tag(a)].len(), 6); // 5 of A + the other host's
    assert_eq!(before[&tag(b)].len(), 5);
    assert_eq!(before[&tag(c)].len(), 5);

    // Without an owner: a usage error; on a non-owner: exit 4 naming the owner.
    let out = cli(&env, &["maintain"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("maintenance_device"),
        "{}",
        stderr(&out)
    );
    env.set_setting("maintenance_device", &env.device).await;
    // Only the global row counts: a device's own row cannot make it a second owner.
    sqlx::query(
        "INSERT INTO settings (device_id, key, value) VALUES ($1, 'maintenance_device', $1)",
    )
    .bind(OTHER)
    .execute(&env.pool)
    .await
    .unwrap();
    let out = env
        .cmd()
        .env("RESTIC_FLEET_DEVICE_ID", OTHER)
        .args(["maintain"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("maintained by device {:?}", env.device)),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        snapshots_by_job(&env),
        before,
        "a non-owner changed the repository"
    );

    // Dry run: what would go, per job; nothing changes, nothing is recorded.
    let out = cli(&env, &["maintain", "--dry-run", "--json"]);
    assert_ok(&out);
    let r = json_of(&out);
    let job_entry = |r: &Value, id: Uuid| {
        r["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["job_id"] == id.to_string())
            .cloned()
            .unwrap_or_else(|| panic!("job {id} not in {r:#}"))
    };
    assert_eq!(job_entry(&r, a)["removed"].as_array().unwrap().len(), 3);
    assert_eq!(job_entry(&r, c)["removed"].as_array().unwrap().len(), 4);
    assert_eq!(r["jobs_without_policy"], 1);
    let ghosts: Vec<&Value> = r["unknown_job_snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(ghosts.len(), 1, "{r:#}");
    assert_eq!(ghosts[0]["job_id"], ghost.to_string());
    assert_eq!(
        snapshots_by_job(&env),
        before,
        "the dry run changed the repository"
    );
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM maintenance_runs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(recorded, 0);

    // The real thing.
    let out = cli(&env, &["maintain", "--json"]);
    assert_ok(&out);
    let r = json_of(&out);
    let steps: Vec<(&str, &str)> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("unlock", "success"),
            ("forget", "success"),
            ("prune", "success"),
            ("check", "success")
        ]
    );

    let after = snapshots_by_job(&env);
    let mine = |v: &[(String, String)], host: &str| -> Vec<String> {
        v.iter()
            .filter(|(_, h)| h == host)
            .map(|(id, _)| id.clone())
            .collect()
    };
    let a_before = mine(&before[&tag(a)], &env.device);
    assert_eq!(
        mine(&after[&tag(a)], &env.device),
        a_before[3..].to_vec(),
        "A keeps exactly its 2 newest, across its path change"
    );
    assert_eq!(
        mine(&after[&tag(a)], OTHER),
        mine(&before[&tag(a)], OTHER),
        "a snapshot with A's tag from another host is not A's"
    );
    assert_eq!(ids(&after[&tag(b)]), ids(&before[&tag(b)]), "B keeps all 5");
    assert_eq!(
        ids(&after[&tag(c)]),
        ids(&before[&tag(c)])[4..].to_vec(),
        "the other device's job keeps its newest"
    );
    assert_eq!(after[&tag(ghost)], before[&tag(ghost)], "never removed");
    assert_ok(&env.restic(&["check"]));

    // Recorded, step by step.
    let rows: Vec<StepRow> = sqlx::query_as(
        "SELECT step, status, exit_code, snapshots_removed, device_id FROM maintenance_runs \
         ORDER BY id",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.1 == "success" && r.2 == Some(0) && r.4 == env.device)
    );
    assert_eq!(rows[1].3, Some(7), "3 of A and 4 of C");
    let freed: Option<i64> =
        sqlx::query_scalar("SELECT bytes_freed FROM maintenance_runs WHERE step = 'prune'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(freed.is_some_and(|b| b >= 0), "{freed:?}");

    // status: maintained, ok.
    let out = cli(&env, &["status", "--json"]);
    let st = json_of(&out);
    assert_eq!(st["maintenance"]["owner"], env.device.as_str(), "{st:#}");
    assert_eq!(st["maintenance"]["verdict"], "ok", "{st:#}");
    assert!(st["maintenance"]["last_prune"]["last_success_at"].is_string());

    // snapshots: job and device names.
    let out = cli(&env, &["snapshots", "--job", &b.to_string(), "--json"]);
    assert_ok(&out);
    let list = json_of(&out);
    assert_eq!(list.as_array().unwrap().len(), 5);
    for s in list.as_array().unwrap() {
        assert_eq!(s["job_name"], "B no policy", "{s:#}");
        assert_eq!(s["hostname"], env.device.as_str());
        assert!(s["device_name"].is_string(), "{s:#}");
    }
    let out = cli(&env, &["snapshots", "--device", OTHER, "--json"]);
    let list = json_of(&out);
    let names: Vec<Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["job_name"].clone())
        .collect();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|s| s["device_name"] == "other-device name")
    );
    assert!(names.contains(&Value::from("C keep-last 1")), "{list:#}");
    assert!(
        names.contains(&Value::Null),
        "the ghost and A-tagged snapshots have no job name"
    );

    // The unknown job's snapshot: the report names the restic-fleet command that removes it
    // (never a bare restic command, whose repository and password are hidden), which does.
    let out = cli(&env, &["maintain", "--dry-run"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("`restic-fleet maintain --forget-unknown-jobs`")
            && !text.contains("`restic forget"),
        "{text}"
    );
    let out = cli(&env, &["maintain", "--forget-unknown-jobs", "--json"]);
    let r = json_of(&out);
    assert_eq!(r["unknown_job_snapshots_forgotten"], true, "{r:#}");
    assert!(!snapshots_by_job(&env).contains_key(&tag(ghost)), "removed");
    assert_eq!(
        after[&tag(b)],
        snapshots_by_job(&env)[&tag(b)],
        "B still keeps all 5"
    );
}

#[tokio::test]
async fn status_exits_1_when_maintenance_fails_or_is_overdue() {
    let env = Env::enrolled().await;
    let out = cli(&env, &["status", "--json"]);
    let st = json_of(&out);
    assert_eq!(st["maintenance"]["verdict"], "not_configured", "{st:#}");
    env.set_setting("maintenance_device", &env.device).await;
    let st = json_of(&cli(&env, &["status", "--json"]));
    assert_eq!(st["maintenance"]["verdict"], "never_run", "{st:#}");
    // An owner that is no device, or never synced, installs no timer: never_run then needs
    // attention (exit 1); once the owner has synced, never_run alone does not.
    sqlx::query("UPDATE devices SET last_seen = NULL WHERE id = $1")
        .bind(&env.device)
        .execute(&env.pool)
        .await
        .unwrap();
    let out = cli(&env, &["status", "--json"]);
    let st = json_of(&out);
    assert_eq!(st["maintenance"]["owner_state"], "never_seen", "{st:#}");
    assert_eq!(st["maintenance"]["verdict"], "never_run", "{st:#}");
    assert_eq!(out.status.code(), Some(1), "{st:#}");
    env.set_setting("maintenance_device", "no-such-device")
        .await;
    let out = cli(&env, &["status", "--json"]);
    let st = json_of(&out);
    assert_eq!(st["maintenance"]["owner_state"], "unknown_device", "{st:#}");
    assert_eq!(out.status.code(), Some(1), "{st:#}");
    sqlx::query("UPDATE devices SET last_seen = NOW() WHERE id = $1")
        .bind(&env.device)
        .execute(&env.pool)
        .await
        .unwrap();
    env.set_setting("maintenance_device", &env.device).await;
    let out = cli(&env, &["status", "--json"]);
    let st = json_of(&out);
    assert_eq!(st["maintenance"]["owner_state"], "online", "{st:#}");
    assert_eq!(st["maintenance"]["verdict"], "never_run", "{st:#}");
    assert_eq!(out.status.code(), Some(0), "{st:#}");

    // Every step succeeded 20 days ago: overdue for a weekly schedule.
    for step in ["unlock", "forget", "prune", "check"] {
        sqlx::query(
            "INSERT INTO maintenance_runs (device_id, step, start_time, end_time, status, exit_code) \
             VALUES ($1, $2, NOW() - INTERVAL '20 days', NOW() - INTERVAL '20 days', 'success', 0)",
        )
        .bind(&env.device)
        .bind(step)
        .execute(&env.pool)
        .await
        .unwrap();
    }
    let out = cli(&env, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_of(&out)["maintenance"]["verdict"], "overdue");
    // A daily schedule makes the same history overdue, a yearly one ok.
    env.set_setting("maintenance_schedule", "@yearly").await;
    let out = cli(&env, &["status", "--json"]);
    assert_eq!(json_of(&out)["maintenance"]["verdict"], "ok");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // The newest prune failed.
    sqlx::query(
        "INSERT INTO maintenance_runs (device_id, step, start_time, end_time, status, exit_code, \
         error_message) VALUES ($1, 'prune', NOW(), NOW(), 'failed', 1, 'restic failed (exit 1): boom')",
    )
    .bind(&env.device)
    .execute(&env.pool)
    .await
    .unwrap();
    let out = cli(&env, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("maintenance: failing"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("boom"), "{}", stdout(&out));
}

#[tokio::test]
async fn retention_flags_are_validated_before_anything_is_written() {
    let env = Env::enrolled().await;
    let src = env.make_source("s", 1);
    let job = env.add_job("j", &[&src]).await;
    let j = job.to_string();
    for bad in [
        vec!["--keep-last", "0"],
        vec!["--keep-within", "30 days"],
        vec!["--keep-within", "--30d"],
        vec!["--keep-daily", "-3"],
    ] {
        let mut args = vec!["job", "edit", &j];
        args.extend(bad.iter());
        let out = cli(&env, &args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
        assert!(!stderr(&out).trim().is_empty());
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM job_retention")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_ok(&cli(
        &env,
        &[
            "job",
            "edit",
            &j,
            "--keep-daily",
            "7",
            "--keep-within",
            "30d",
        ],
    ));
    assert_ok(&cli(&env, &["job", "edit", &j, "--keep-weekly", "4"]));
    let show = json_of(&cli(&env, &["job", "show", &j, "--json"]));
    assert_eq!(
        show["retention"]["description"], "keep-daily=7 keep-weekly=4 keep-within=30d",
        "only the options given change"
    );
    // The default applies to jobs without a policy; a malformed default is refused.
    let out = cli(
        &env,
        &["settings", "set", "retention_default", "keep-daily=x"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_ok(&cli(
        &env,
        &["settings", "set", "retention_default", "keep-last=3"],
    ));
    assert_ok(&cli(&env, &["job", "edit", &j, "--no-retention"]));
    let show = json_of(&cli(&env, &["job", "show", &j, "--json"]));
    assert_eq!(show["retention"]["source"], "default", "{show:#}");
    assert_eq!(show["retention"]["keep_last"], 3);
    for (key, bad) in [
        ("prune_max_unused", "--x"),
        ("check_read_data_subset", "0/5"),
        ("maintenance_schedule", "weekly"),
        ("repository_lock_wait_seconds", "soon"),
    ] {
        let out = cli(&env, &["settings", "set", key, bad]);
        assert_eq!(out.status.code(), Some(2), "{key}={bad}: {}", stderr(&out));
    }
}

/// Every regular file under `dir`, relative path → content.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[tokio::test]
async fn restore_reproduces_the_backup_byte_for_byte_and_only_from_the_jobs_own_snapshots() {
    let env = Env::with_repo().await;
    add_device(&env, OTHER).await;
    let src = env.make_source("data", 3);
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    let binary: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(src.join("sub/deeper/blob.bin"), &binary).unwrap();
    std::fs::write(src.join("sub/ünïcode name.txt"), "ü\n\0\r\n").unwrap();
    let job = env.add_job("data", &[&src]).await;
    assert_ok(&run_as(&env, &env.device.clone(), job));
    let expected = tree(&src);
    // Later, another host writes a snapshot with the same job tag (a copied Relica UUID):
    // `latest` must still be this job's own.
    let intruder = env.make_source("intruder", 1);
    let out = env.restic(&[
        "backup",
        "--quiet",
        "--host",
        OTHER,
        "--tag",
        &format!("backup:{job}"),
        intruder.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let intruder_id = snapshots_by_job(&env)[&format!("backup:{job}")]
        .iter()
        .find(|(_, h)| h == OTHER)
        .unwrap()
        .0
        .clone();
    // The job's device reaches the repository through its own setting; the global one points
    // nowhere: restore and snapshots must use the job's device's settings, not the machine's.
    sqlx::query("INSERT INTO settings (device_id, key, value) VALUES ($1, 'repository_url', $2)")
        .bind(&env.device)
        .bind(env.repo().to_str().unwrap())
        .execute(&env.pool)
        .await
        .unwrap();
    env.set_setting(
        "repository_url",
        env.dir.path().join("no-such-repository").to_str().unwrap(),
    )
    .await;

    let target = env.dir.path().join("restored");
    // From an admin machine: no config, only --database-url.
    let admin = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_restic-fleet"))
            .env_remove("DATABASE_URL")
            .env(
                "RESTIC_FLEET_CONFIG",
                env.dir.path().join("no-such-config.toml"),
            )
            .env("HOME", env.dir.path())
            .args(args)
            .args(["--database-url", &env.url])
            .output()
            .unwrap()
    };
    let out = admin(&[
        "restore",
        &job.to_string(),
        "--target",
        target.to_str().unwrap(),
        "--dry-run",
        "--json",
    ]);
    assert_ok(&out);
    assert!(!target.exists(), "a dry run restores nothing");
    let out = admin(&[
        "restore",
        &job.to_string(),
        "--target",
        target.to_str().unwrap(),
        "--json",
    ]);
    assert_ok(&out);
    let r = json_of(&out);
    assert_eq!(r["restored"], true);
    assert_ne!(r["snapshot_id"], intruder_id.as_str());
    // restic restores a snapshot's absolute paths below the target.
    let restored_root = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(tree(&restored_root), expected, "restored files differ");
    assert_eq!(tree(&target).len(), expected.len(), "nothing else restored");
    // `snapshots --job` reaches it the same way.
    let out = admin(&["snapshots", "--job", &job.to_string(), "--json"]);
    assert_ok(&out);
    assert!(
        json_of(&out)
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == r["snapshot_id"]),
        "{}",
        stdout(&out)
    );

    // A non-empty target is refused unless --force.
    let out = admin(&[
        "restore",
        &job.to_string(),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));

    // The other host's snapshot with the job's tag is not the job's.
    let other_target = env.dir.path().join("other");
    let out = admin(&[
        "restore",
        &job.to_string(),
        "--target",
        other_target.to_str().unwrap(),
        "--snapshot",
        &intruder_id[..12],
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a snapshot of job"),
        "{}",
        stderr(&out)
    );
    assert!(!other_target.exists());

    // --include restores only that path.
    let partial = env.dir.path().join("partial");
    let include = src.join("sub/deeper");
    let out = admin(&[
        "restore",
        &job.to_string(),
        "--target",
        partial.to_str().unwrap(),
        "--include",
        include.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let got = tree(&partial);
    assert_eq!(got.len(), 1, "{:?}", got.keys().collect::<Vec<_>>());
    assert_eq!(got.values().next().unwrap(), &binary);
}

/// Leaves `mib` MiB of incompressible data half used in the repository, so that a
/// `prune --max-unused=0` must download and repack it.
fn half_used_pack(env: &Env) {
    let src = env.dir.path().join("churn");
    std::fs::create_dir_all(&src).unwrap();
    let mut seed = 0x9e3779b97f4a7c15u64;
    for name in ["keep.bin", "drop.bin"] {
        let mut buf = vec![0u8; 1 << 20];
        for b in buf.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        std::fs::write(src.join(name), &buf).unwrap();
    }
    let p = src.to_str().unwrap();
    assert_ok(&env.restic(&["backup", "--quiet", "--host", "churn", p]));
    std::fs::remove_file(src.join("drop.bin")).unwrap();
    assert_ok(&env.restic(&["backup", "--quiet", "--host", "churn", p]));
    assert_ok(&env.restic(&["forget", "--host", "churn", "--keep-last", "1"]));
}

fn lock_files(env: &Env) -> usize {
    std::fs::read_dir(env.repo().join("locks"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_backup_started_while_prune_holds_the_lock_succeeds_after_waiting() {
    let env = Env::with_repo().await;
    env.set_setting("repository_lock_wait_seconds", "300").await;
    let src = env.make_source("src", 2);
    let job = env.add_job("waits", &[&src]).await;
    half_used_pack(&env);
    // A real prune, slowed by restic's own download limit so that it holds its exclusive lock
    // for several seconds however fast the machine is.
    let mut prune = Command::new("restic")
        .args(["prune", "--max-unused=0", "--limit-download=100"])
        .env("RESTIC_REPOSITORY", env.repo())
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", env.dir.path().join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while lock_files(&env) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "prune never locked");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = run_as(&env, &env.device.clone(), job);
    let prune_status = prune.try_wait().unwrap();
    let prune_status = match prune_status {
        Some(s) => s,
        None => prune.wait().unwrap(),
    };
    assert!(prune_status.success(), "the prune itself failed");
    assert_ok(&out);
    let err = stderr(&out);
    // restic 0.16+ waits for the lock itself (--retry-lock); for 0.14 restic-fleet retries.
    let waiting = if restic_version() >= (0, 16, 0) {
        "restic waits for the lock itself for up to"
    } else {
        "retrying in"
    };
    assert!(
        err.contains("the repository is locked") && err.contains(waiting),
        "the backup did not wait for the lock:\n{err}"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM runs WHERE job_id = $1")
        .bind(job)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(status, "success");
    assert_ok(&env.restic(&["check"]));
}

#[tokio::test]
async fn one_maintain_at_a_time_and_a_dead_ones_steps_are_closed() {
    let env = Env::with_repo().await;
    env.set_setting("maintenance_device", &env.device).await;
    // A maintain that died mid-prune left its step running.
    sqlx::query(
        "INSERT INTO maintenance_runs (device_id, step, status) VALUES ($1, 'prune', 'running')",
    )
    .bind(&env.device)
    .execute(&env.pool)
    .await
    .unwrap();
    // Another maintain holds the lock now.
    let lock_path = env.config_path().parent().unwrap().join("maintain.lock");
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    held.try_lock().unwrap();
    let out = cli(&env, &["maintain"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));
    let running: i64 =
        sqlx::query_scalar("SELECT count(*) FROM maintenance_runs WHERE status = 'running'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(running, 1, "the live maintain's step is left alone");
    drop(held);

    let out = cli(&env, &["maintain", "--json"]);
    assert_ok(&out);
    let statuses: Vec<(String, String)> =
        sqlx::query_as("SELECT step, status FROM maintenance_runs ORDER BY id")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(statuses[0], ("prune".to_string(), "failed".to_string()));
    assert_eq!(statuses.len(), 5);
    assert!(
        statuses[1..].iter().all(|(_, s)| s == "success"),
        "{statuses:?}"
    );
    // The failed leftover is older than the new prune: status is ok again.
    let st = json_of(&cli(&env, &["status", "--json"]));
    assert_eq!(st["maintenance"]["verdict"], "ok", "{st:#}");
}

#[tokio::test]
async fn a_damaged_repository_is_a_failed_check_saying_what_restic_found() {
    let env = Env::with_repo().await;
    env.set_setting("maintenance_device", &env.device).await;
    let src = env.make_source("src", 2);
    let job = env.add_job("docs", &[&src]).await;
    assert_ok(&run_as(&env, &env.device.clone(), job));
    // A pack file lost from the repository's storage.
    let pack = walk_files(&env.repo().join("data"))
        .into_iter()
        .next()
        .unwrap();
    std::fs::remove_file(&pack).unwrap();
    let out = cli(&env, &["maintain", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let (status, message, metadata): (String, String, Value) = sqlx::query_as(
        "SELECT status, error_message, metadata FROM maintenance_runs WHERE step = 'check'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(status, "failed");
    assert!(!message.contains('\n'), "one sentence: {message}");
    if restic_version() >= (0, 18, 0) {
        // check --json: the count, the first error, what to do.
        assert!(
            message.starts_with(&format!(
                "restic check found {} error(s) in the repository {}, the first: pack ",
                metadata["check"]["num_errors"],
                env.repo().display()
            )),
            "{message}"
        );
        assert!(
            metadata["check"]["num_errors"].as_u64().unwrap() > 0,
            "{metadata}"
        );
        assert!(message.contains("does not exist; repair it"), "{message}");
    } else {
        assert_eq!(
            message,
            "restic failed (exit 1): repository contains errors"
        );
        assert!(metadata.get("check").is_none(), "{metadata}");
    }
}

/// Every file under `dir`, at any depth.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk_files(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// restic on `repo` (with the test password), for the repositories of a template.
fn restic_on(env: &Env, repo: &Path, args: &[&str]) -> Output {
    Command::new("restic")
        .args(args)
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", env.dir.path().join("cache"))
        .output()
        .expect("restic")
}

/// A snapshot of `src` as `run` tags it (`backup:<job>`, `device:<host>`, and `extra`).
fn backup_on(env: &Env, repo: &Path, host: &str, job: Uuid, src: &Path, extra: &[&str]) {
    let mut args = vec!["backup", "--quiet", "--host", host];
    let tags = [format!("backup:{job}"), format!("device:{host}")];
    for t in tags.iter().map(String::as_str).chain(extra.iter().copied()) {
        args.extend(["--tag", t]);
    }
    args.push(src.to_str().unwrap());
    assert_ok(&restic_on(env, repo, &args));
}

/// Snapshot ids per `backup:` job in `repo`, oldest first.
fn jobs_in(env: &Env, repo: &Path) -> BTreeMap<String, Vec<String>> {
    let out = restic_on(env, repo, &["snapshots", "--json", "--no-lock"]);
    assert_ok(&out);
    let mut list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    list.sort_by(|a, b| a["time"].as_str().cmp(&b["time"].as_str()));
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in list {
        let tag = s["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|t| t.starts_with("backup:"))
            .unwrap_or("none")
            .to_string();
        by.entry(tag)
            .or_default()
            .push(s["id"].as_str().unwrap().to_string());
    }
    by
}

/// A `restic` first on PATH that logs its arguments, one line per process, and runs the real
/// one: the log counts the processes maintain starts.
fn recording_restic(env: &Env) -> (PathBuf, PathBuf) {
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v restic"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bin = env.dir.path().join("recording-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = env.dir.path().join("restic.log");
    let script = bin.join("restic");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.trim()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, log)
}

fn forget_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("forget"))
        .map(str::to_string)
        .collect()
}

async fn keep_last(env: &Env, job: Uuid, n: &str) {
    assert_ok(&cli(
        env,
        &["job", "edit", &job.to_string(), "--keep-last", n],
    ));
}

/// `maintenance_runs` as (step, status, repository_id, device_id), in order.
async fn steps_recorded(env: &Env) -> Vec<(String, String, Option<i32>, String)> {
    sqlx::query_as(
        "SELECT step, status, repository_id, device_id FROM maintenance_runs ORDER BY id",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn each_device_maintains_its_own_repository_and_only_it() {
    let env = Env::with_repo().await;
    add_device(&env, OTHER).await;
    add_device(&env, "nas").await;
    let base = env.dir.path().join("repos");
    env.set_setting(
        "repository_url",
        &format!("{}/{{device_id}}", base.display()),
    )
    .await;
    env.set_setting("maintenance_device", "nas").await;
    let repo_of = |d: &str| base.join(d);
    for d in [env.device.as_str(), OTHER] {
        assert_ok(&restic_on(&env, &repo_of(d), &["init", "--quiet"]));
    }
    let src = env.make_source("src", 1);
    let mine = env.add_job("mine", &[&src]).await;
    let theirs = add_job_on(&env, OTHER, "theirs", &[&src]).await;
    keep_last(&env, mine, "1").await;
    keep_last(&env, theirs, "1").await;
    for i in 0..3 {
        std::fs::write(src.join("changing.txt"), format!("{i}")).unwrap();
        backup_on(&env, &repo_of(&env.device), &env.device, mine, &src, &[]);
        backup_on(&env, &repo_of(OTHER), OTHER, theirs, &src, &[]);
    }
    let before_other = jobs_in(&env, &repo_of(OTHER));

    // The maintenance_device has no repository to maintain here: it touches neither.
    let out = env
        .cmd()
        .env("RESTIC_FLEET_DEVICE_ID", "nas")
        .args(["maintain", "--json"])
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(json_of(&out)["repositories"], serde_json::json!([]));
    assert!(steps_recorded(&env).await.is_empty());

    let out = cli(&env, &["maintain", "--json"]);
    assert_ok(&out);
    let r = json_of(&out);
    let repos = r["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 1, "{r:#}");
    assert_eq!(repos[0]["maintainer"], env.device.as_str());
    let id = repos[0]["repository_id"].as_i64().unwrap() as i32;
    let tag = |j: Uuid| format!("backup:{j}");
    assert_eq!(jobs_in(&env, &repo_of(&env.device))[&tag(mine)].len(), 1);
    assert_eq!(
        jobs_in(&env, &repo_of(OTHER)),
        before_other,
        "not its repository"
    );
    let steps = steps_recorded(&env).await;
    assert_eq!(steps.len(), 4, "{steps:?}");
    assert!(
        steps
            .iter()
            .all(|s| s.1 == "success" && s.2 == Some(id) && s.3 == env.device),
        "{steps:?}"
    );
    let (maintainer, count): (Option<String>, Option<i32>) = sqlx::query_as(
        "SELECT maintainer_device_id, snapshot_count FROM repositories WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(maintainer.as_deref(), Some(env.device.as_str()));
    assert_eq!(count, Some(1));

    let out = env
        .cmd()
        .env("RESTIC_FLEET_DEVICE_ID", OTHER)
        .args(["maintain", "--json"])
        .output()
        .unwrap();
    assert_ok(&out);
    let after_other = jobs_in(&env, &repo_of(OTHER));
    assert_eq!(
        after_other[&tag(theirs)],
        before_other[&tag(theirs)][2..].to_vec(),
        "its newest one kept"
    );
    let other_id: i32 = json_of(&out)["repositories"][0]["repository_id"]
        .as_i64()
        .unwrap() as i32;
    assert_ne!(other_id, id);

    // status: one entry per repository, labelled by fingerprint and maintainer, never by URL.
    let st = json_of(&cli(&env, &["status", "--json"]));
    let repos = st["maintenance"]["repositories"].as_array().unwrap();
    let entry = |d: &str| {
        repos
            .iter()
            .find(|r| r["maintainer"] == d)
            .unwrap_or_else(|| panic!("{d} not in {st:#}"))
    };
    for d in [env.device.as_str(), OTHER] {
        assert_eq!(entry(d)["verdict"], "ok", "{st:#}");
        assert_eq!(entry(d)["label"].as_str().unwrap().len(), 12);
        assert_eq!(entry(d)["snapshot_count"], 1);
    }
    assert!(!st.to_string().contains(base.to_str().unwrap()), "{st:#}");
    let metrics = stdout(&cli(&env, &["metrics"]));
    let label = entry(OTHER)["label"].as_str().unwrap();
    assert!(
        metrics.contains(&format!(
            "restic_fleet_repository_maintenance_verdict{{repository=\"{label}\",maintainer=\"{OTHER}\",verdict=\"ok\"}} 1"
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_shared_repository_is_forgotten_by_one_restic_forget_per_policy() {
    let env = Env::with_repo().await;
    add_device(&env, OTHER).await;
    env.set_setting("maintenance_device", &env.device).await;
    let src = env.make_source("src", 1);
    let repo = env.repo();
    let mut batched = Vec::new();
    for i in 0..5 {
        let dev = if i % 2 == 0 {
            env.device.as_str()
        } else {
            OTHER
        };
        let job = add_job_on(&env, dev, &format!("job {i}"), &[&src]).await;
        keep_last(&env, job, "2").await;
        batched.push((job, dev));
    }
    // Its tags changed after its first snapshot: grouped by tags it would keep 2 per tag set.
    let changed = env.add_job("changed tags", &[&src]).await;
    keep_last(&env, changed, "2").await;
    let keep_all = env.add_job("no policy", &[&src]).await;
    for i in 0..3 {
        std::fs::write(src.join("changing.txt"), format!("{i}")).unwrap();
        for (job, dev) in &batched {
            backup_on(&env, &repo, dev, *job, &src, &[]);
        }
        let extra: &[&str] = if i == 0 { &[] } else { &["moved"] };
        backup_on(&env, &repo, &env.device, changed, &src, extra);
        backup_on(&env, &repo, &env.device, keep_all, &src, &[]);
    }
    let before = jobs_in(&env, &repo);
    let (bin, log) = recording_restic(&env);
    let out = env
        .cmd()
        .env("PATH", path_with(&bin))
        .args(["maintain", "--json"])
        .output()
        .unwrap();
    assert_ok(&out);
    let r = json_of(&out);

    let forgets = forget_lines(&log);
    assert_eq!(
        forgets.len(),
        2,
        "one batch and one job alone: {forgets:#?}"
    );
    let batch = forgets
        .iter()
        .find(|l| l.contains("--group-by=host,tags"))
        .expect("a batch");
    for (job, _) in &batched {
        assert!(batch.contains(&format!("--tag=backup:{job}")), "{batch}");
    }
    assert!(!batch.contains(&changed.to_string()), "{batch}");
    let alone = forgets
        .iter()
        .find(|l| l.contains(&changed.to_string()))
        .unwrap();
    assert!(
        alone.contains("--group-by=") && alone.contains("--host="),
        "{alone}"
    );
    assert_eq!(r["repositories"][0]["forget_processes"], 2, "{r:#}");

    let after = jobs_in(&env, &repo);
    let tag = |j: Uuid| format!("backup:{j}");
    for (job, _) in &batched {
        assert_eq!(after[&tag(*job)], before[&tag(*job)][1..].to_vec(), "{job}");
    }
    assert_eq!(after[&tag(changed)], before[&tag(changed)][1..].to_vec());
    assert_eq!(after[&tag(keep_all)], before[&tag(keep_all)]);
    let entry = |id: Uuid| {
        r["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["job_id"] == id.to_string())
            .cloned()
            .unwrap()
    };
    assert_eq!(entry(batched[0].0)["removed"].as_array().unwrap().len(), 1);
    assert_eq!(entry(batched[0].0)["kept"].as_array().unwrap().len(), 2);
    assert_eq!(entry(changed)["alone"], true);
    assert_eq!(entry(batched[1].0)["alone"], false);

    // Recorded against the shared repository, with its count.
    let id = r["repositories"][0]["repository_id"].as_i64().unwrap() as i32;
    assert!(r["repositories"][0]["maintainer"].is_null(), "{r:#}");
    let steps = steps_recorded(&env).await;
    assert!(
        steps.iter().all(|s| s.2 == Some(id) && s.1 == "success"),
        "{steps:?}"
    );
    let count: Option<i32> =
        sqlx::query_scalar("SELECT snapshot_count FROM repositories WHERE id = $1")
            .bind(id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(count, Some(2 * 6 + 3));
}

#[tokio::test]
async fn a_device_cannot_record_steps_for_a_repository_it_does_not_maintain() {
    let env = Env::with_repo().await;
    env.set_setting("maintenance_device", "nas").await;
    add_device(&env, "nas").await;
    let pw = env.dir.path().join("pw");
    std::fs::write(&pw, "pw\n").unwrap();
    let out = env
        .cmd()
        .args(["db", "roles", "--database-url", &env.url])
        .arg("--admin-password-file")
        .arg(&pw)
        .arg("--viewer-password-file")
        .arg(&pw)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&out);
    let out = env
        .cmd()
        .env("DATABASE_URL", &env.url)
        .args(["device", "enroll", &env.device, "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&out);
    let url = json_of(&out)["database_url"].as_str().unwrap().to_string();
    let shared: i32 = sqlx::query_scalar(
        "INSERT INTO repositories (fingerprint) VALUES (repeat('a', 64)) RETURNING id",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    let mut device = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let refused =
        sqlx::query_scalar::<_, i32>("SELECT fleet_register_repository(repeat('a', 64), true)")
            .fetch_one(&mut device)
            .await
            .unwrap_err();
    assert!(
        refused.to_string().contains("maintenance_device"),
        "{refused}"
    );
    let refused = sqlx::query(
        "INSERT INTO maintenance_runs (device_id, repository_id, step, status) \
         VALUES ($1, $2, 'forget', 'success')",
    )
    .bind(&env.device)
    .bind(shared)
    .execute(&mut device)
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("row-level security"),
        "{refused}"
    );
    // maintain as this device maintains nothing: exit 4 naming the owner, nothing recorded.
    let out = env
        .cmd()
        .env("DATABASE_URL", &url)
        .args(["maintain"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("\"nas\""), "{}", stderr(&out));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM maintenance_runs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
