//! `restic-fleet init`: enrol this machine.

use std::io::IsTerminal;
use std::path::Path;

use clap::Args;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use crate::domain::exit;
use crate::local::config::{self, Config};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// PostgreSQL URL with this device's own login, as `restic-fleet device enroll` prints it,
    /// e.g. postgres://fleet_3f9a0c21d7e4b5a6c8d90e1f:PASSWORD@db.example.com/backup_control;
    /// `-` reads it from standard input (prompted for, not echoed, on a terminal), so that its
    /// password stays out of the process list and shell history.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: String,
    /// This device's id (default: the host name up to the first dot, lowercased).
    #[arg(long, value_name = "ID")]
    pub device_id: Option<String>,
    /// Human-readable device name (default: the host name; kept on re-runs unless given).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct InitReport {
    pub config_path: String,
    pub device_id: String,
    pub device_name: String,
    pub platform: String,
    pub hostname: String,
    pub created: bool,
}

/// `restic-fleet init`: enrols the machine and says what happened.
pub async fn run(config_path: &Path, args: &InitArgs) -> anyhow::Result<u8> {
    let report = init(config_path, args).await?;
    if args.json {
        crate::output::print_json(&report)?;
    } else {
        println!(
            "{} device {:?} ({}, {}); config written to {}",
            if report.created {
                "registered"
            } else {
                "updated"
            },
            report.device_id,
            report.device_name,
            report.platform,
            report.config_path
        );
        println!("next: `restic-fleet sync` installs this device's schedules");
    }
    Ok(exit::SUCCESS)
}

/// Registers (or updates) this device. `name` is only changed when given.
pub async fn register_device(
    pool: &PgPool,
    device_id: &str,
    name: Option<&str>,
) -> anyhow::Result<(String, bool)> {
    let hostname = crate::platform::host::hostname();
    let metadata = json!({
        "client_version": crate::platform::host::VERSION,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    });
    crate::store::devices::register(
        pool,
        device_id,
        name,
        crate::platform::host::platform(),
        &hostname,
        metadata,
    )
    .await
}

/// A device role may register only its own device (row-level security, migration 006).
fn not_this_device(err: anyhow::Error, device_id: &str) -> anyhow::Error {
    let denied = err.chain().any(|c| {
        matches!(c.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42501"))
    });
    if denied {
        crate::usage_err!(
            "the database role in this URL may not register device {device_id:?}: a device's \
             role registers only its own device; use the line `restic-fleet device enroll \
             {}` printed for this device",
            crate::domain::quote::posix(device_id)
        )
    } else {
        err
    }
}

/// The config file already at `config_path`, unless it is an admin config (no `device_id`):
/// enrolling would overwrite the admin's database URL, so that is refused.
fn keep_admin_config(config_path: &Path) -> anyhow::Result<Option<config::ConfigFile>> {
    if !config_path.exists() {
        return Ok(None);
    }
    let existing = config::load_file(config_path).ok();
    if existing.as_ref().is_some_and(|c| c.device_id.is_none()) {
        return Err(crate::usage_err!(
            "the config file {} is an admin config (database_url without device_id) and \
             enrolling this machine would overwrite it; pass --config PATH to give the device \
             a config file of its own, or remove {} first",
            config_path.display(),
            config_path.display()
        ));
    }
    Ok(existing)
}

pub async fn init(config_path: &Path, args: &InitArgs) -> anyhow::Result<InitReport> {
    let device_id = args
        .device_id
        .clone()
        .unwrap_or_else(config::default_device_id);
    config::validate_device_id(&device_id)?;
    let existing = keep_admin_config(config_path)?;
    let database_url = match args.database_url.as_str() {
        "-" if std::io::stdin().is_terminal() => rpassword::prompt_password("database URL: ")
            .map_err(|e| crate::usage_err!("cannot read the database URL: {e}"))?,
        "-" => crate::commands::read_stdin_value()?,
        url => url.to_string(),
    };
    let database_url = database_url.trim().to_string();
    if database_url.is_empty() {
        return Err(crate::usage_err!(
            "no database URL was given; paste the URL that `restic-fleet device enroll` printed"
        ));
    }
    // Connect (and migrate) first: a config is only written for a database that works.
    let pool = crate::store::db::connect(&database_url).await?;
    let (name, created) = register_device(&pool, &device_id, args.name.as_deref())
        .await
        .map_err(|e| not_this_device(e, &device_id))?;
    let cfg = Config {
        database_url,
        device_id: device_id.clone(),
        // Keep a state_dir the existing file names.
        state_dir: existing.and_then(|c| c.state_dir),
    };
    // The state directory will hold the local copy (the repository password): private from the
    // start, and closed again here if an older version or an unzip left it open.
    crate::local::state::StateDir::for_config(&cfg).ensure_private()?;
    config::write(config_path, &cfg)?;
    Ok(InitReport {
        config_path: config_path.display().to_string(),
        device_id,
        device_name: name,
        platform: crate::platform::host::platform().to_string(),
        hostname: crate::platform::host::hostname(),
        created,
    })
}
