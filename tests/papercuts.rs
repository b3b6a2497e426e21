//! What a new user tripped over: bash completion below the first word (driven by
//! bash itself), job names wherever a job is taken, unknown setting keys, schedules that can
//! never fire or do not fit, `schedule preview --interval` bounds, `--help` without an empty
//! `[env: ...=]`, and the `--json` fields in `restic-fleet man`.

mod common;

use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

fn rf(env: &Env, args: &[&str]) -> Output {
    env.cmd().args(args).stdin(Stdio::null()).output().unwrap()
}

/// Runs `restic-fleet` as an admin machine would: no config file, only a database URL.
fn admin(env: &Env, args: &[&str]) -> Output {
    env.cmd()
        .env(
            "RESTIC_FLEET_CONFIG",
            env.dir.path().join("no-such-config.toml"),
        )
        .env("DATABASE_URL", &env.url)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn refused(out: &Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "{}", stderr(out));
    let err = stderr(out);
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
}

#[test]
fn bash_completes_every_level() {
    let bin = env!("CARGO_BIN_EXE_restic-fleet");
    let script = Command::new(bin)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert_ok(&script);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("restic-fleet.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    // `complete -p` says which function bash calls; each line below asks it for the words it
    // would offer at the cursor (the last word) and prints them.
    let driver = format!(
        r#"source '{}'
spec=$(complete -p restic-fleet) || exit 10
fn=$(printf '%s\n' "$spec" | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
ask() {{
  COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}
  COMPREPLY=()
  "$fn" restic-fleet "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
  echo "$*|${{COMPREPLY[*]}}"
}}
ask restic-fleet ''
ask restic-fleet job ''
ask restic-fleet schedule add --c
ask restic-fleet settings set --
ask restic-fleet db roles --
"#,
        file.display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&driver)
        .output()
        .unwrap();
    assert_ok(&out);
    let text = stdout(&out);
    let offered = |prefix: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{prefix}|")))
            .unwrap_or_else(|| panic!("no answer for {prefix}: {text}"));
        line.split('|')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let top = offered("restic-fleet ");
    assert!(
        top.contains(&"job".to_string()) && top.contains(&"sync".to_string()),
        "{top:?}"
    );
    let job = offered("restic-fleet job ");
    for w in ["add", "edit", "list", "show", "rm"] {
        assert!(
            job.contains(&w.to_string()),
            "{w} missing after `job`: {job:?}"
        );
    }
    assert!(offered("restic-fleet schedule add --c").contains(&"--cron".to_string()));
    assert!(offered("restic-fleet settings set --").contains(&"--device".to_string()));
    assert!(
        offered("restic-fleet db roles --")
            .iter()
            .any(|w| w.starts_with("--"))
    );
}

#[test]
fn help_shows_no_empty_env_value() {
    let bin = env!("CARGO_BIN_EXE_restic-fleet");
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["job", "list", "--help"],
    ] {
        let out = Command::new(bin)
            .args(&args)
            .env_remove("RESTIC_FLEET_CONFIG")
            .output()
            .unwrap();
        assert_ok(&out);
        let text = stdout(&out)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(!text.contains("=]"), "{args:?}: {text}");
        assert!(
            text.contains("[env: RESTIC_FLEET_CONFIG]"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn man_documents_every_json_output() {
    let bin = env!("CARGO_BIN_EXE_restic-fleet");
    let out = Command::new(bin).arg("man").output().unwrap();
    assert_ok(&out);
    let page = stdout(&out);
    assert!(page.contains(".SH \"JSON OUTPUT\""));
    for cmd in [
        "run",
        "sync",
        "status",
        "runs list",
        "settings list",
        "job list",
        "schedule preview",
    ] {
        let roff = format!("restic\\-fleet {} ", cmd.replace('-', "\\-"));
        assert!(page.contains(&roff), "{cmd} not documented");
    }
    assert!(page.contains("run_id, job_id, job_name"));
    assert!(page.contains("restic\\-fleet man \\-\\-out\\-dir"));
}

#[tokio::test]
async fn jobs_are_named_by_name_and_ambiguity_lists_the_candidates() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 1);
    let job = env.add_job("home", &[&src]).await;
    let out = rf(
        &env,
        &[
            "device",
            "add",
            "laptop2",
            "--name",
            "Laptop 2",
            "--platform",
            "linux",
        ],
    );
    assert_ok(&out);
    let other: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO backup_jobs (device_id, name, source_paths) VALUES ('laptop2', 'home', '{/home}') RETURNING id",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();

    // On the device: the name is this device's job.
    let out = rf(&env, &["run", "home", "--json"]);
    assert_ok(&out);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["job_id"], job.to_string());
    let out = rf(
        &env,
        &["schedule", "add", "home", "--cron", "0 3 * * *", "--json"],
    );
    assert_ok(&out);
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["job_id"], job.to_string());
    let out = rf(&env, &["job", "show", "home", "--json"]);
    assert_ok(&out);
    let out = rf(&env, &["runs", "list", "--job", "home", "--json"]);
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);

    // From an admin machine (no device): ambiguous, then DEVICE/NAME.
    let out = admin(&env, &["job", "show", "home"]);
    refused(
        &out,
        &[
            "ambiguous",
            &format!("laptop2/home ({other})"),
            &format!("test-device/home ({job})"),
        ],
    );
    let out = admin(&env, &["job", "show", "laptop2/home", "--json"]);
    assert_ok(&out);
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["id"], other.to_string());
    let out = admin(&env, &["job", "disable", "laptop2/home"]);
    assert_ok(&out);
    let out = admin(
        &env,
        &["schedule", "list", "--job", "test-device/home", "--json"],
    );
    assert_ok(&out);
    let out = admin(&env, &["job", "show", "nobody"]);
    refused(&out, &["no backup job named \"nobody\""]);
}

#[tokio::test]
async fn settings_set_refuses_unknown_keys() {
    let env = Env::enrolled().await;
    // A near miss gets one suggestion, not the list of every key.
    let out = rf(&env, &["settings", "set", "repositry_url", "x"]);
    refused(
        &out,
        &[
            "unknown setting \"repositry_url\"",
            "did you mean repository_url?",
            "restic-fleet settings list",
        ],
    );
    assert!(
        !stderr(&out).contains("network_wait_seconds"),
        "{}",
        stderr(&out)
    );
    // get and unset of a key no setting has say so too (not "is not set").
    for args in [
        &["settings", "get", "nosuch"][..],
        &["settings", "unset", "nosuch", "-y"],
    ] {
        let out = rf(&env, args);
        refused(&out, &["unknown setting \"nosuch\"", "settings list"]);
        assert!(!stderr(&out).contains("did you mean"), "{}", stderr(&out));
        assert!(!stderr(&out).contains("is not set"), "{}", stderr(&out));
    }
    let out = rf(&env, &["settings", "get", "timezon"]);
    refused(&out, &["did you mean timezone?"]);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM settings WHERE key = 'repositry_url'")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_ok(&rf(
        &env,
        &["settings", "set", "repository_url", "/srv/restic"],
    ));
    assert_ok(&rf(
        &env,
        &["settings", "set", "network_wait_seconds", "30"],
    ));
    let out = rf(&env, &["settings", "set", "network_wait_seconds", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    // A global default removed by hand is still a known key (its migration names it).
    assert_ok(&rf(&env, &["settings", "unset", "prevent_sleep", "-y"]));
    assert_ok(&rf(&env, &["settings", "set", "prevent_sleep", "false"]));
}

#[tokio::test]
async fn schedules_that_never_fire_or_do_not_fit_are_refused() {
    let env = Env::enrolled().await;
    let src = env.make_source("src", 1);
    env.add_job("home", &[&src]).await;
    let out = rf(&env, &["schedule", "add", "home", "--cron", "0 0 30 2 *"]);
    refused(&out, &["\"0 0 30 2 *\" can never fire"]);
    let out = rf(
        &env,
        &["schedule", "add", "home", "--cron", "0 0 31 4,6,9,11 *"],
    );
    refused(&out, &["can never fire"]);
    let long = (0..5000)
        .map(|i| (i % 60).to_string())
        .collect::<Vec<_>>()
        .join(",");
    let expr = format!("{long} * * * *");
    let out = rf(&env, &["schedule", "add", "home", "--cron", &expr]);
    refused(&out, &["characters long", "255"]);
    // Still fine: 29 February fires in leap years, and day 31 with a month that has it.
    assert_ok(&rf(
        &env,
        &["schedule", "add", "home", "--cron", "0 0 29 2 *"],
    ));
    assert_ok(&rf(
        &env,
        &["schedule", "add", "home", "--cron", "0 0 31 4,5 *"],
    ));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM schedules")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 2);
    // And sync stays green.
    let (bin, _) = fake_tool(&env, "systemctl", "");
    let units = env.dir.path().join("units");
    let (code, r) = sync_json(&env, &bin, &["--unit-dir", units.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{r:#}");
}

#[tokio::test]
async fn preview_interval_uses_schedule_add_bounds() {
    let env = Env::enrolled().await;
    let src = env.make_source("src", 1);
    env.add_job("home", &[&src]).await;
    for secs in ["0", "2147483648", "99999999999999"] {
        let add = rf(&env, &["schedule", "add", "home", "--interval", secs]);
        let preview = rf(&env, &["schedule", "preview", "--interval", secs]);
        assert_eq!(add.status.code(), Some(2), "{secs}");
        assert_eq!(
            preview.status.code(),
            Some(2),
            "{secs}: {}",
            stdout(&preview)
        );
        assert!(
            stderr(&preview).contains("must be a positive number of seconds (at most 2147483647)"),
            "{}",
            stderr(&preview)
        );
    }
    assert_ok(&rf(
        &env,
        &["schedule", "preview", "--interval", "2147483647"],
    ));
}
