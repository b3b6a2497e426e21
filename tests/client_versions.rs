//! Which clients the fleet runs: `device list|show` show each device's restic-fleet and restic
//! versions as of its last sync, the database holds the oldest client version its schema
//! needs, and `status` names a device whose client is older. An old client is simulated by
//! rewriting, as the admin, the version a real `sync` reported (what an old binary would have
//! written); a device that never synced is "unknown", never flagged.

mod common;

use std::process::{Output, Stdio};

use common::*;
use restic_fleet::domain::client_version::SCHEMA_MIN_CLIENT;
use serde_json::Value;

const OURS: &str = env!("CARGO_PKG_VERSION");

fn rf(env: &Env, args: &[&str]) -> Output {
    env.cmd().args(args).stdin(Stdio::null()).output().unwrap()
}

fn json(env: &Env, args: &[&str]) -> Value {
    let out = rf(env, args);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}\n{}{}", stdout(&out), stderr(&out)))
}

fn device<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|d| d["id"] == id || d["device_id"] == id))
        .unwrap_or_else(|| panic!("no device {id} in {list}"))
}

async fn stored_minimum(env: &Env) -> String {
    sqlx::query_scalar("SELECT min_client_version FROM schema_client_minimum")
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

async fn set_minimum(env: &Env, version: &str) {
    sqlx::query("UPDATE schema_client_minimum SET min_client_version = $1")
        .bind(version)
        .execute(&env.pool)
        .await
        .unwrap();
}

/// A real sync of this device (systemd stood in by a recording `systemctl`), which reports the
/// client's and restic's versions.
fn sync(env: &Env) {
    let (bin, _log) = fake_tool(env, "systemctl", "");
    let units = env.dir.path().join("units");
    let out = env
        .cmd()
        .env("PATH", path_with(&bin))
        .args(["sync", "--unit-dir", units.to_str().unwrap()])
        .output()
        .unwrap();
    assert_ok(&out);
}

#[tokio::test]
async fn devices_show_their_versions_and_status_names_clients_older_than_the_schema_needs() {
    let env = Env::enrolled().await;
    assert_ok(&rf(
        &env,
        &["device", "add", "spare", "--platform", "windows"],
    ));
    sync(&env);

    // The migration stored the minimum, and this build raised it to its own (no lower).
    assert_eq!(stored_minimum(&env).await, SCHEMA_MIN_CLIENT);

    let list = json(&env, &["device", "list", "--json"]);
    let me = device(&list, &env.device);
    assert_eq!(me["client_version"], OURS, "{me}");
    let restic = me["restic_version"]
        .as_str()
        .unwrap_or_else(|| panic!("{me}"));
    assert!(
        restic.starts_with("restic ") || restic == "not installed",
        "restic_version as sync reported it: {restic}"
    );
    let spare = device(&list, "spare");
    assert!(
        spare["client_version"].is_null() && spare["restic_version"].is_null(),
        "{spare}"
    );
    let shown = json(&env, &["device", "show", &env.device, "--json"]);
    assert_eq!(shown["client_version"], OURS, "{shown}");
    assert_eq!(shown["restic_version"], me["restic_version"], "{shown}");
    let table = stdout(&rf(&env, &["device", "list"]));
    let spare_line = table
        .lines()
        .find(|l| l.trim_start().starts_with("spare"))
        .unwrap_or_else(|| panic!("no spare in {table}"));
    assert!(spare_line.contains("unknown"), "{table}");

    // Current clients: nothing flagged.
    let status = json(&env, &["status", "--json"]);
    assert_eq!(status["min_client_version"], SCHEMA_MIN_CLIENT, "{status}");
    let devices = &status["devices"];
    assert_eq!(device(devices, &env.device)["client_outdated"], false);
    assert_eq!(device(devices, &env.device)["client_version"], OURS);
    assert_eq!(device(devices, "spare")["client_outdated"], false);
    assert!(device(devices, "spare")["client_version"].is_null());
    let before = rf(&env, &["status"]);
    assert!(
        !stdout(&before).contains("warning: device"),
        "{}",
        stdout(&before)
    );

    // The device last synced with an older client (what that binary reported).
    sqlx::query(
        "UPDATE devices SET metadata = jsonb_set(metadata, '{client_version}', '\"0.0.9\"') \
         WHERE id = $1",
    )
    .bind(&env.device)
    .execute(&env.pool)
    .await
    .unwrap();
    let list = json(&env, &["device", "list", "--json"]);
    assert_eq!(device(&list, &env.device)["client_version"], "0.0.9");
    let status = json(&env, &["status", "--json"]);
    assert_eq!(
        device(&status["devices"], &env.device)["client_outdated"],
        true,
        "{status}"
    );
    assert_eq!(
        device(&status["devices"], "spare")["client_outdated"],
        false
    );
    let after = rf(&env, &["status"]);
    let text = stdout(&after);
    let warning = format!(
        "warning: device {} runs restic-fleet 0.0.9, older than {SCHEMA_MIN_CLIENT}, the oldest \
         version that understands this database's schema; install the new package on it",
        env.device
    );
    assert!(text.contains(&warning), "{text}");
    assert!(!text.contains("device spare runs"), "{text}");
    // A warning, not a verdict: the exit code is what the jobs say.
    assert_eq!(after.status.code(), before.status.code());

    // A newer client migrated the database and raised the minimum: the current device is
    // named too; this build's `db migrate` does not lower it.
    set_minimum(&env, "99.0.0").await;
    assert_ok(&rf(&env, &["db", "migrate", "--database-url", &env.url]));
    assert_eq!(stored_minimum(&env).await, "99.0.0");
    sqlx::query(
        "UPDATE devices SET metadata = jsonb_set(metadata, '{client_version}', to_jsonb($2::text)) \
         WHERE id = $1",
    )
    .bind(&env.device)
    .bind(OURS)
    .execute(&env.pool)
    .await
    .unwrap();
    let status = json(&env, &["status", "--json"]);
    assert_eq!(status["min_client_version"], "99.0.0");
    assert_eq!(
        device(&status["devices"], &env.device)["client_outdated"],
        true,
        "{status}"
    );

    // A minimum below this build's is raised by this build's migrate.
    set_minimum(&env, "0.0.1").await;
    assert_ok(&rf(&env, &["db", "migrate", "--database-url", &env.url]));
    assert_eq!(stored_minimum(&env).await, SCHEMA_MIN_CLIENT);
}
