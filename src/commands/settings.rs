//! `restic-fleet settings list|get|set|unset [--device ID]`.

use std::path::Path;

use clap::{Args, Subcommand};
use sqlx::PgPool;

use crate::commands::{Conn, confirm, explain, require_device};
use crate::domain::exit::{self, Failure};
use crate::output::{self, print_json, shown_value};
use crate::usage_err;

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// List the global settings, or with --device the settings in force on that device.
    List(ListArgs),
    /// Print one setting's value (with --device: the value in force on that device).
    Get(GetArgs),
    /// Set a global setting, or with --device a device's own value. VALUE `-` reads it from
    /// standard input (for repository_password, so that it stays out of shell history).
    Set(SetArgs),
    /// Remove a setting (with --device: the device's own value, so the global one applies).
    Unset(UnsetArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The settings in force on this device (global values overridden by its own).
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    /// Show secret values (repository_password) instead of ***.
    #[arg(long)]
    pub show_secrets: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    #[arg(value_name = "KEY")]
    pub key: String,
    /// The value in force on this device.
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    /// Show a secret value instead of ***.
    #[arg(long)]
    pub show_secrets: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    #[arg(value_name = "KEY")]
    pub key: String,
    /// The value; `-` reads it from standard input (one trailing newline is removed).
    #[arg(value_name = "VALUE", allow_hyphen_values = true)]
    pub value: String,
    /// Set this device's own value instead of the global one.
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    /// A description stored with the setting.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct UnsetArgs {
    #[arg(value_name = "KEY")]
    pub key: String,
    /// Remove this device's own value.
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    #[command(flatten)]
    pub conn: Conn,
}

pub async fn run(config_path: &Path, cmd: SettingsCommand) -> anyhow::Result<u8> {
    explain(dispatch(config_path, cmd).await)
}

async fn dispatch(config_path: &Path, cmd: SettingsCommand) -> anyhow::Result<u8> {
    match cmd {
        SettingsCommand::List(a) => list(config_path, a).await,
        SettingsCommand::Get(a) => get(config_path, a).await,
        SettingsCommand::Set(a) => set(config_path, a).await,
        SettingsCommand::Unset(a) => unset(config_path, a).await,
    }
}

/// Keys whose values must be non-negative whole numbers.
const NUMERIC_KEYS: &[&str] = &[
    "sync_interval_seconds",
    "max_concurrent_backups",
    "run_retention_days",
    "schedule_jitter_seconds",
    "missed_run_grace_seconds",
    "concurrency_wait_seconds",
    "windows_execution_time_limit_hours",
    "hook_timeout_seconds",
    "repository_lock_wait_seconds",
    "network_wait_seconds",
];

/// Keys whose values must be booleans (read with `Settings::get_bool`).
const BOOL_KEYS: &[&str] = &[
    "windows_run_on_battery",
    "windows_wake_to_run",
    "ping_warning_as_success",
    "run_on_battery",
    "prevent_sleep",
];

/// Checks the shape of a key: lower-case letters, digits and underscores.
pub fn validate_key(key: &str) -> anyhow::Result<()> {
    if key.is_empty()
        || key.len() > 255
        || !key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        || !key.starts_with(|c: char| c.is_ascii_lowercase())
    {
        return Err(usage_err!(
            "setting key {key:?} must be lower-case letters, digits and underscores, like \
             sync_interval_seconds"
        ));
    }
    Ok(())
}

/// Checks a key and its value before anything is written.
pub fn validate(key: &str, value: &str) -> anyhow::Result<()> {
    validate_key(key)?;
    if NUMERIC_KEYS.contains(&key) {
        let number = crate::domain::settings::parse_number(value);
        let needs_positive = matches!(
            key,
            "sync_interval_seconds" | "max_concurrent_backups" | "hook_timeout_seconds"
        );
        if number.is_none() || (needs_positive && number == Some(0)) {
            return Err(usage_err!(
                "setting {key} must be a whole number from {} to {}, not {value:?}",
                u8::from(needs_positive),
                crate::domain::settings::MAX_NUMBER
            ));
        }
    }
    if BOOL_KEYS.contains(&key)
        && crate::domain::settings::Settings::from_pairs([(key.to_string(), value.to_string())])
            .get_bool(key, false)
            .is_err()
    {
        return Err(usage_err!(
            "setting {key} must be true or false, not {value:?}"
        ));
    }
    if key == "timezone"
        && !value.trim().is_empty()
        && value.trim().parse::<chrono_tz::Tz>().is_err()
    {
        return Err(usage_err!(
            "setting timezone {value:?} is not an IANA time zone name (like Europe/Prague or \
             UTC); an empty value means the device's local zone"
        ));
    }
    // The notifier posts to these; empty turns a target off.
    if matches!(key, "notify_webhook_url" | "notify_ntfy_url")
        && !value.trim().is_empty()
        && let Err(e) = crate::platform::ping::validate_url(value.trim())
    {
        return Err(usage_err!(
            "setting {key} is not a usable URL: {e}; give a URL like https://example.com/hook, \
             or an empty value to turn it off"
        ));
    }
    // Backend credentials are checked where they are written (and again by `run`).
    if key == crate::domain::restic::backend_env::KEY {
        crate::domain::restic::backend_env::parse(value).map_err(|e| usage_err!("{e}"))?;
    }
    if key == "repository_url" {
        crate::domain::repository::validate_template(value.trim())
            .map_err(|e| usage_err!("{e}"))?;
    }
    if value.contains('\0') {
        return Err(usage_err!(
            "the value of {key} must not contain NUL characters"
        ));
    }
    crate::domain::maintenance::validate_setting(key, value)?;
    Ok(())
}

async fn list(config_path: &Path, a: ListArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    if let Some(d) = &a.device {
        require_device(&pool, d).await?;
    }
    let mut rows = crate::store::settings::rows(&pool, a.device.as_deref()).await?;
    for r in &mut rows {
        r.value = shown_value(&r.key, &r.value, r.secret, a.show_secrets);
    }
    // Row-level security hides secret rows from viewers: say so instead of leaving them out.
    let hidden: Vec<String> = crate::store::settings::hidden_secrets(&pool)
        .await?
        .into_iter()
        .filter(|key| !rows.iter().any(|r| r.key == *key))
        .collect();
    if a.conn.json {
        print_json(&listed_json(&rows, &hidden)?)?;
        return Ok(exit::SUCCESS);
    }
    let mut t = output::table(&["key", "value", "scope", "description"]);
    for r in &rows {
        t.add_row(vec![
            r.key.clone(),
            r.value.clone(),
            match &r.device_id {
                Some(d) => format!("device {d}"),
                None => "global".into(),
            },
            r.description.clone().unwrap_or_default(),
        ]);
    }
    for key in hidden {
        t.add_row(vec![
            key,
            "(hidden)".into(),
            "-".into(),
            "secret: backup_viewer may not read it; connect as backup_admin".into(),
        ]);
    }
    println!("{}", output::render(&t));
    Ok(exit::SUCCESS)
}

/// `settings list --json`: the rows with `hidden: false`, then one entry per secret key this
/// role may not read, with `hidden: true` and every other field null (whether it is set is
/// hidden too).
fn listed_json(
    rows: &[crate::store::settings::SettingOut],
    hidden: &[String],
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut out = Vec::with_capacity(rows.len() + hidden.len());
    for r in rows {
        let mut v = serde_json::to_value(r)?;
        if let Some(m) = v.as_object_mut() {
            m.insert("hidden".into(), false.into());
        }
        out.push(v);
    }
    out.extend(hidden.iter().map(|key| {
        serde_json::json!({
            "key": key, "value": null, "scope": null, "device_id": null,
            "description": null, "updated_at": null, "hidden": true,
        })
    }));
    Ok(out)
}

async fn get(config_path: &Path, a: GetArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    if let Some(d) = &a.device {
        require_device(&pool, d).await?;
    }
    let rows = crate::store::settings::rows(&pool, a.device.as_deref()).await?;
    let row = rows.into_iter().find(|r| r.key == a.key);
    if row.is_none() {
        refuse_hidden_secret(&pool, &a.key).await?;
        require_known_key(&pool, &a.key).await?;
    }
    let mut row = row.ok_or_else(|| {
        usage_err!(
            "setting {:?} is not set{}; list settings with `restic-fleet settings list`",
            a.key,
            a.device
                .as_deref()
                .map(|d| format!(" for device {d:?}"))
                .unwrap_or_default()
        )
    })?;
    row.value = shown_value(&row.key, &row.value, row.secret, a.show_secrets);
    if a.conn.json {
        print_json(&row)?;
    } else {
        println!("{}", row.value);
    }
    Ok(exit::SUCCESS)
}

/// A secret setting that this role cannot see is not "not set": row-level security hides
/// secrets from viewers, so say that instead.
async fn refuse_hidden_secret(pool: &PgPool, key: &str) -> anyhow::Result<()> {
    let (secret, viewer) = crate::store::settings::secret_for_viewer(pool, key).await?;
    if secret && viewer {
        return Err(Failure::failed(format!(
            "the database role in use (backup_viewer) may not read secret settings such as {key}; \
             connect as backup_admin to read it"
        ))
        .into());
    }
    Ok(())
}

/// Refuses a key the database does not know (exit 2, with the known key it most resembles).
async fn require_known_key(pool: &PgPool, key: &str) -> anyhow::Result<()> {
    let known = crate::store::settings::known_keys(pool).await?;
    if known.iter().any(|k| k == key) {
        return Ok(());
    }
    let list = "`restic-fleet settings list` shows every setting";
    Err(match crate::domain::settings::closest_key(key, &known) {
        Some(k) => usage_err!("unknown setting {key:?}; did you mean {k}? ({list})"),
        None => usage_err!("unknown setting {key:?}; {list}"),
    })
}

async fn set(config_path: &Path, a: SetArgs) -> anyhow::Result<u8> {
    let from_stdin = a.value == "-";
    let value = if from_stdin {
        crate::commands::read_stdin_value()?
    } else {
        a.value.clone()
    };
    validate(&a.key, &value)?;
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let secrets = crate::store::settings::secret_keys(&pool).await?;
    let secret = secrets.contains(&a.key);
    // repository_url is a secret for what it may hold (viewers never read it): a URL without a
    // password may be given as an argument, one with a password may not.
    let url_credential =
        a.key == "repository_url" && crate::domain::text::mask_url(&value) != value;
    if secret && !from_stdin && (a.key != "repository_url" || url_credential) {
        // An argument lands in shell history and in every process listing.
        let what = if url_credential {
            format!("{} holds a password, which", a.key)
        } else {
            format!("{} is a secret and", a.key)
        };
        return Err(usage_err!(
            "{what} is not taken from the command line; give it on standard input with VALUE \
             `-`, e.g. `restic-fleet settings set {} - < FILE`",
            a.key
        ));
    }
    // A typo in a key is refused instead of stored where nothing reads it.
    require_known_key(&pool, &a.key).await?;
    if let Some(d) = &a.device {
        require_device(&pool, d).await?;
    }
    if a.key == "repository_url" {
        check_repository_layout(&pool, a.device.as_deref(), Some(&value)).await?;
    }
    let description = a.description.as_deref();
    match &a.device {
        None => crate::store::settings::set_global(&pool, &a.key, &value, description).await?,
        Some(d) => {
            crate::store::settings::set_for_device(&pool, d, &a.key, &value, description).await?;
        }
    }
    let shown = shown_value(&a.key, &value, secret, false);
    if a.conn.json {
        print_json(&serde_json::json!({
            "key": a.key,
            "value": shown,
            "scope": if a.device.is_some() { "device" } else { "global" },
            "device_id": a.device,
        }))?;
    } else {
        match &a.device {
            None => println!("set {} = {shown:?} (global)", a.key),
            Some(d) => println!("set {} = {shown:?} for device {d:?}", a.key),
        }
    }
    Ok(exit::SUCCESS)
}

/// Refuses a `repository_url` change (`value` for the global row or `device`'s own; `None`
/// removes the device's own) under which a job's repository URL cannot be made, or which makes
/// a repository one device's own while another device writes to it (see
/// [`crate::domain::repository::layout`]). Collisions already there before are left to the
/// change that made them; a job error of a device the change applies to is always refused.
async fn check_repository_layout(
    pool: &PgPool,
    device: Option<&str>,
    value: Option<&str>,
) -> anyhow::Result<()> {
    use crate::domain::repository::{DeviceJobs, layout};
    let rows = crate::store::settings::rows_of_key(pool, "repository_url").await?;
    let places = crate::store::jobs::all_places(pool).await?;
    let view = |changed: bool| -> Vec<DeviceJobs> {
        let mut rows = rows.clone();
        if changed {
            rows.retain(|(d, _)| d.as_deref() != device);
            if let Some(v) = value {
                rows.push((device.map(str::to_string), v.to_string()));
            }
        }
        let global = rows
            .iter()
            .find(|(d, _)| d.is_none())
            .map(|(_, v)| v.clone());
        let mut devices: Vec<DeviceJobs> = Vec::new();
        for p in &places {
            if devices.last().is_none_or(|d| d.device_id != p.device_id) {
                let own = rows
                    .iter()
                    .find(|(d, _)| d.as_deref() == Some(p.device_id.as_str()));
                let url = own.map(|(_, v)| v.clone()).or(global.clone());
                let settings = crate::domain::settings::Settings::from_pairs(
                    url.map(|u| ("repository_url".to_string(), u)),
                )
                .with_own(&p.device_id, own.map(|_| "repository_url".to_string()));
                devices.push(DeviceJobs {
                    device_id: &p.device_id,
                    settings,
                    jobs: Vec::new(),
                });
            }
            if let Some(d) = devices.last_mut() {
                d.jobs.push(p.place());
            }
        }
        // A device without a repository_url has nothing to check (`run` says so).
        devices.retain(|d| d.settings.get("repository_url").is_some());
        devices
    };
    let before = layout(&view(false));
    let after = layout(&view(true));
    let applies = |d: &str| match device {
        Some(own) => own == d,
        None => !rows.iter().any(|(r, _)| r.as_deref() == Some(d)),
    };
    if let Some((d, e)) = after.job_errors.iter().find(|(d, _)| applies(d)) {
        return Err(usage_err!(
            "repository_url is not changed: for device {d:?}, {e}"
        ));
    }
    let new: Vec<&String> = after.collisions.difference(&before.collisions).collect();
    if let Some(first) = new.first() {
        let more = match new.len() {
            1 => String::new(),
            n => format!(" ({} more repositories alike)", n - 1),
        };
        return Err(usage_err!("repository_url is not changed: {first}{more}"));
    }
    Ok(())
}

async fn unset(config_path: &Path, a: UnsetArgs) -> anyhow::Result<u8> {
    validate_key(&a.key)?;
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    if let Some(d) = &a.device {
        require_device(&pool, d).await?;
    }
    require_known_key(&pool, &a.key).await?;
    if a.key == "repository_url" && a.device.is_some() {
        check_repository_layout(&pool, a.device.as_deref(), None).await?;
    }
    let exists = crate::store::settings::row_id(&pool, &a.key, a.device.as_deref()).await?;
    let Some(id) = exists else {
        return Err(usage_err!(
            "setting {:?} is not set{}; nothing to remove",
            a.key,
            a.device
                .as_deref()
                .map(|d| format!(" for device {d:?}"))
                .unwrap_or_else(|| " globally".into())
        ));
    };
    confirm(
        &match &a.device {
            Some(d) => format!("remove setting {} of device {d:?}", a.key),
            None => format!("remove the global setting {}", a.key),
        },
        a.yes,
    )?;
    crate::store::settings::delete(&pool, id).await?;
    if a.conn.json {
        print_json(&serde_json::json!({"key": a.key, "device_id": a.device, "removed": true}))?;
    } else {
        println!("removed setting {}", a.key);
    }
    Ok(exit::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_keys_and_values() {
        assert!(validate("sync_interval_seconds", "300").is_ok());
        assert!(validate("sync_interval_seconds", "0").is_err());
        assert!(validate("windows_wake_to_run", "yes").is_ok());
        assert!(validate("windows_wake_to_run", "maybe").is_err());
        assert!(validate("windows_execution_time_limit_hours", "-1").is_err());
        assert!(validate("run_retention_days", "-1").is_err());
        assert!(validate("timezone", "Europe/Prague").is_ok());
        assert!(validate("timezone", "").is_ok());
        assert!(validate("timezone", "Mars/Olympus").is_err());
        assert!(validate("Bad Key", "x").is_err());
        assert!(validate("custom_key", "anything").is_ok());
    }
}
