//! Scheduled runs behave like hand runs: each generated unit's `ExecStart=` run
//! under `env -i` with only what systemd gives it uses restic's cache; backend credentials
//! reach restic (a real SFTP backend through `sftp-server`) and nowhere else; the network wait;
//! the sleep inhibitor; ConditionACPower=; the meaningful failure line.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::*;
use serde_json::Value;
use uuid::Uuid;

/// The words of an `ExecStart=` line, unquoted by a shell (our lines only use `"..."` words
/// with C escapes, which sh's double quotes read the same way for these paths).
fn exec_start(unit: &Path, instance: &str) -> String {
    let text = std::fs::read_to_string(unit).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart in {}", unit.display()));
    assert!(!line.contains('$'), "{line}");
    line.replace("%i", instance).replace("%%", "%")
}

/// Runs an ExecStart line as systemd would: `env -i` with PATH, INVOCATION_ID and the
/// unit's CacheDirectory= as $CACHE_DIRECTORY.
fn run_as_systemd(line: &str, cache_dir: &Path) -> std::process::Output {
    std::fs::create_dir_all(cache_dir).unwrap();
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec env -i PATH='{SYSTEMD_PATH}' INVOCATION_ID=feedface CACHE_DIRECTORY='{}' {line}",
            cache_dir.display()
        ))
        .output()
        .unwrap()
}

fn files_under(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

async fn last_run(env: &Env, job: Uuid) -> (String, Option<String>, String, Value, String) {
    sqlx::query_as(
        "SELECT status, error_message, COALESCE(restic_errors, ''), metadata, triggered_by \
         FROM runs WHERE job_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(job)
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_generated_unit_uses_restics_cache_under_env_minus_i() {
    let env = Env::with_repo().await;
    // The default: no repository_cache_dir, so the unit's CacheDirectory= decides.
    env.set_setting("repository_cache_dir", "").await;
    let units = env.dir.path().join("units");
    let (bin, _log) = fake_tool(&env, "systemctl", "");
    let src = env.make_source("src", 3);
    let job = env.add_job("home", &[&src]).await;
    let sched = add_cron(&env, job, "0 3 * * *").await;
    let (code, r) = sync_json(&env, &bin, &["--unit-dir", units.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{r:#}");
    let service = units.join(format!("{}.service", stem(job)));
    let text = std::fs::read_to_string(&service).unwrap();
    assert!(text.contains("CacheDirectory=restic-fleet"), "{text}");
    assert!(!text.contains("KillMode="), "{text}");

    // The job's own unit, at its slot.
    sqlx::query("UPDATE schedules SET next_run_at = NOW() WHERE id = $1")
        .bind(sched)
        .execute(&env.pool)
        .await
        .unwrap();
    let cache = env.dir.path().join("var-cache/restic-fleet");
    let out = run_as_systemd(&exec_start(&service, ""), &cache);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (status, msg, errors, meta, by) = last_run(&env, job).await;
    assert_eq!(
        (status.as_str(), by.as_str()),
        ("success", "schedule"),
        "{msg:?}"
    );
    assert!(!errors.contains("unable to open cache"), "{errors}");
    assert!(meta["warnings"].as_array().unwrap().is_empty(), "{meta}");
    let cached = files_under(&cache);
    assert!(cached > 0, "restic wrote nothing into {}", cache.display());

    // The catch-up template unit, instantiated for the job (with a slot missed again), uses
    // the same cache.
    sqlx::query("UPDATE schedules SET next_run_at = NOW() - INTERVAL '1 hour' WHERE id = $1")
        .bind(sched)
        .execute(&env.pool)
        .await
        .unwrap();
    let template = units.join("restic-fleet-catchup@.service");
    let out = run_as_systemd(&exec_start(&template, &job.to_string()), &cache);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (status, _, errors, meta, by) = last_run(&env, job).await;
    assert_eq!((status.as_str(), by.as_str()), ("success", "missed"));
    assert!(!errors.contains("unable to open cache"), "{errors}");
    assert!(meta["warnings"].as_array().unwrap().is_empty(), "{meta}");
    assert!(files_under(&cache) >= cached);
}

#[tokio::test]
async fn a_cache_restic_cannot_use_is_a_warning() {
    let env = Env::with_repo().await;
    env.set_setting("repository_cache_dir", "/dev/null/cache")
        .await;
    let src = env.make_source("src", 1);
    let job = env.add_job("home", &[&src]).await;
    let out = env.cmd().args(["run", &job.to_string()]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("could not use its cache"),
        "{}",
        stdout(&out)
    );
    let (status, msg, _, meta, _) = last_run(&env, job).await;
    assert_eq!(status, "success");
    assert!(
        msg.unwrap()
            .starts_with("warning: restic could not use its cache")
    );
    assert_eq!(meta["warnings"].as_array().unwrap().len(), 1, "{meta}");
    let st = env.cmd().args(["status", "--json"]).output().unwrap();
    let st: Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["jobs"][0]["verdict"], "warning", "{st:#}");
    // The other restic commands work without the cache too (restic 0.19 would abort), and say
    // why it is not used.
    let out = env.cmd().args(["snapshots", "--json"]).output().unwrap();
    assert_ok(&out);
    assert!(
        stderr(&out).contains("could not use its cache"),
        "{}",
        stderr(&out)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#}");
    env.set_setting("maintenance_device", &env.device).await;
    let out = env.cmd().args(["maintain"]).output().unwrap();
    assert_ok(&out);
}

/// A fake `ssh` that logs its environment and speaks SFTP through the real `sftp-server`
/// (a real SFTP backend without an sshd); its first `fail_first` calls fail the way ssh does
/// when the server is not up yet. A failing call waits a moment before it exits: restic
/// forwards ssh's stderr from a goroutine that loses the race with restic's exit when ssh quits
/// at once (about one run in eight), and the tests that read ssh's line must not depend on it.
fn fake_ssh(env: &Env, fail_first: u32) -> PathBuf {
    let bin = env.dir.path().join("sshbin");
    std::fs::create_dir_all(&bin).unwrap();
    let d = env.dir.path().display();
    std::fs::write(
        bin.join("ssh"),
        format!(
            "#!/bin/sh\nn=$(cat '{d}/ssh.count' 2>/dev/null || echo 0)\necho $((n+1)) > '{d}/ssh.count'\n\
             env > '{d}/ssh.env'\n\
             if [ \"$n\" -lt {fail_first} ]; then echo 'ssh: connect to host 127.0.0.1 port 22: Connection refused' >&2; sleep 0.3; exit 255; fi\n\
             exec /usr/lib/openssh/sftp-server\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[tokio::test]
async fn backend_environment_reaches_restic_only() {
    let env = Env::with_repo().await;
    let secret = "s3cr3t-b2-key-0042";
    env.set_setting(
        "repository_url",
        &format!("sftp:backup@127.0.0.1:{}", env.repo().display()),
    )
    .await;
    let ssh = fake_ssh(&env, 0);
    let src = env.make_source("src", 2);
    let job = env.add_job("home", &[&src]).await;
    add_cron(&env, job, "0 3 * * *").await;

    // Written through the CLI: refused variables first, then the real one.
    for (bad, why) in [
        ("RESTIC_PASSWORD_COMMAND=cat /etc/shadow", "is not one of"),
        ("RESTIC_REPOSITORY=/elsewhere", "is not one of"),
        ("LD_PRELOAD=/tmp/x.so", "is not one of"),
        ("not a line", "KEY=VALUE"),
    ] {
        let out = with_stdin(
            &env,
            &["settings", "set", "repository_environment", "-"],
            bad,
        );
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{bad}: {}", stderr(&out));
    }
    let out = with_stdin(
        &env,
        &["settings", "set", "repository_environment", "-"],
        &format!("# B2\nB2_ACCOUNT_ID=0042\nB2_ACCOUNT_KEY={secret}\n"),
    );
    assert_ok(&out);
    assert!(!stdout(&out).contains(secret));

    let out = env
        .cmd()
        .env("PATH", path_with(&ssh))
        .args(["run", &job.to_string(), "--json"])
        .output()
        .unwrap();
    assert_ok(&out);
    let seen = std::fs::read_to_string(env.dir.path().join("ssh.env")).unwrap();
    assert!(seen.contains(&format!("B2_ACCOUNT_KEY={secret}")), "{seen}");
    assert!(!stdout(&out).contains(secret) && !stderr(&out).contains(secret));

    // Masked in every listing, in the units, the task XML and the stored run.
    for args in [
        vec!["settings", "list"],
        vec!["settings", "list", "--json"],
        vec!["settings", "get", "repository_environment"],
        vec!["settings", "list", "--device", "test-device", "--json"],
    ] {
        let out = env.cmd().args(&args).output().unwrap();
        assert_ok(&out);
        assert!(!stdout(&out).contains(secret), "{args:?}: {}", stdout(&out));
    }
    let units = env.dir.path().join("units");
    let (bin, _) = fake_tool(&env, "systemctl", "");
    let (code, _) = sync_json(&env, &bin, &["--unit-dir", units.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    let xml = env.dir.path().join("xml");
    let (code, _) = sync_json(
        &env,
        &bin,
        &[
            "--backend",
            "windows",
            "--dry-run",
            "--output-dir",
            xml.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0));
    for dir in [&units, &xml] {
        for f in std::fs::read_dir(dir).unwrap().flatten() {
            let bytes = std::fs::read(f.path()).unwrap();
            let text = String::from_utf8_lossy(&bytes).replace('\0', "");
            assert!(!text.contains(secret), "{}", f.path().display());
        }
    }
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runs WHERE restic_output LIKE $1 OR restic_errors LIKE $1 \
         OR error_message LIKE $1 OR metadata::text LIKE $1",
    )
    .bind(format!("%{secret}%"))
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0);

    // Validated again where it is used: a value written around the CLI is refused by `run`.
    env.set_setting("repository_environment", "PATH=/tmp/evil")
        .await;
    let out = env
        .cmd()
        .env("PATH", path_with(&ssh))
        .args(["run", &job.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("PATH is not one of"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn an_unreachable_repository_is_retried_until_the_network_is_up() {
    let env = Env::with_repo().await;
    env.set_setting(
        "repository_url",
        &format!("sftp:backup@127.0.0.1:{}", env.repo().display()),
    )
    .await;
    env.set_setting("network_wait_seconds", "30").await;
    let ssh = fake_ssh(&env, 2);
    let src = env.make_source("src", 2);
    let job = env.add_job("home", &[&src]).await;
    let started = Instant::now();
    let out = env
        .cmd()
        .env("PATH", path_with(&ssh))
        .args(["run", &job.to_string()])
        .output()
        .unwrap();
    assert_ok(&out);
    // Two refused connections (waits of 2 s and 4 s), then the backup.
    assert!(started.elapsed().as_secs() >= 6, "{:?}", started.elapsed());
    let count = std::fs::read_to_string(env.dir.path().join("ssh.count")).unwrap();
    assert!(count.trim().parse::<u32>().unwrap() >= 3, "{count}");
    assert!(
        stderr(&out).contains("cannot be reached"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_failing_sftp_run_names_the_real_cause() {
    let env = Env::with_repo().await;
    env.set_setting(
        "repository_url",
        &format!("sftp:backup@127.0.0.1:{}", env.repo().display()),
    )
    .await;
    env.set_setting("network_wait_seconds", "0").await;
    let ssh = fake_ssh(&env, 1000);
    let src = env.make_source("src", 1);
    let job = env.add_job("home", &[&src]).await;
    let out = env
        .cmd()
        .env("PATH", path_with(&ssh))
        .args(["run", &job.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(
            "failed: restic failed (exit 1): ssh: connect to host 127.0.0.1 port 22: Connection refused"
        ),
        "{}",
        stdout(&out)
    );
    let (_, msg, _, _, _) = last_run(&env, job).await;
    assert!(msg.unwrap().contains("Connection refused"));
    let st = env.cmd().args(["status"]).output().unwrap();
    assert!(
        stdout(&st).contains("Connection refused"),
        "{}",
        stdout(&st)
    );
}

#[tokio::test]
async fn a_sleep_inhibitor_is_held_during_the_backup_unless_switched_off() {
    let env = Env::with_repo().await;
    // The fake keeps running like the real one does, until restic-fleet ends it.
    let (bin, log) = fake_tool(&env, "systemd-inhibit", "");
    let script = bin.join("systemd-inhibit");
    let body = std::fs::read_to_string(&script).unwrap();
    std::fs::write(&script, body.replace("exit 0", "exec sleep 600")).unwrap();
    let src = env.make_source("src", 1);
    let job = env.add_job("home", &[&src]).await;
    // A system bus is named (the fake stands in for logind behind it), or none is started.
    let bus = "unix:path=/run/restic-fleet-test/system_bus_socket";
    let started = Instant::now();
    let out = env
        .cmd()
        .env("PATH", path_with(&bin))
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .args(["run", &job.to_string()])
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(started.elapsed().as_secs() < 60);
    let c = calls(&log);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(
        c[0].starts_with("--what=sleep --who=restic-fleet --why=backup of \"home\" --mode=block"),
        "{c:?}"
    );
    // Without a system bus there is no logind to ask: no inhibitor process at all.
    if !std::path::Path::new("/run/dbus/system_bus_socket").exists() {
        let out = env
            .cmd()
            .env("PATH", path_with(&bin))
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .args(["run", &job.to_string()])
            .output()
            .unwrap();
        assert_ok(&out);
        assert_eq!(calls(&log).len(), 1);
    }
    env.set_setting("prevent_sleep", "false").await;
    let out = env
        .cmd()
        .env("PATH", path_with(&bin))
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .args(["run", &job.to_string()])
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(calls(&log).len(), 1);
}

#[tokio::test]
async fn run_on_battery_false_adds_condition_ac_power() {
    let env = Env::enrolled().await;
    let (bin, _) = fake_tool(&env, "systemctl", "");
    let units = env.dir.path().join("units");
    let src = env.make_source("src", 1);
    let job = env.add_job("home", &[&src]).await;
    add_cron(&env, job, "0 3 * * *").await;
    let (code, _) = sync_json(&env, &bin, &["--unit-dir", units.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    let service = units.join(format!("{}.service", stem(job)));
    assert!(
        !std::fs::read_to_string(&service)
            .unwrap()
            .contains("ConditionACPower")
    );
    let out = env
        .cmd()
        .args(["settings", "set", "run_on_battery", "false"])
        .output()
        .unwrap();
    assert_ok(&out);
    let (code, r) = sync_json(&env, &bin, &["--unit-dir", units.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{r:#}");
    for f in [service, units.join("restic-fleet-catchup@.service")] {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.contains("\nConditionACPower=true\n"), "{text}");
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(units.join(format!("{}.service", stem(job))))
        .arg(units.join(format!("{}.timer", stem(job))))
        .output()
        .unwrap();
    assert!(stderr(&out).trim().is_empty(), "{}", stderr(&out));
    let out = env
        .cmd()
        .args(["settings", "set", "run_on_battery", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
