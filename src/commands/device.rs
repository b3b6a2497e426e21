//! `restic-fleet device list|show|add|enroll|enable|disable|rm`.

use std::path::Path;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

use crate::commands::{Conn, confirm, explain};
use crate::domain::exit;
use crate::output::{self, print_json, printable};
use crate::usage_err;

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// List the registered devices.
    List(ListArgs),
    /// Show one device with its jobs.
    Show(IdArgs),
    /// Register a device (usually `restic-fleet init` on the machine does this).
    Add(AddArgs),
    /// Create (or rotate) the device's own database login and print the `restic-fleet init`
    /// line to run on that machine; the password is shown only this once.
    Enroll(crate::ops::enroll::EnrollArgs),
    /// Enable a device: its jobs run again.
    Enable(IdArgs),
    /// Disable a device: none of its jobs run, and status reports them as disabled.
    Disable(IdArgs),
    /// Remove a device with its jobs, schedules, runs and settings, and drop its database
    /// login.
    Rm(RmArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// Device id.
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Platform {
    Linux,
    Windows,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Linux => "linux",
            Platform::Windows => "windows",
        }
    }
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Device id (what the machine's config holds as device_id).
    #[arg(value_name = "ID")]
    pub id: String,
    /// Human-readable name (default: the id).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Operating system of the device.
    #[arg(long, value_enum)]
    pub platform: Platform,
    /// Free-text description.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Host name (sync fills it in from the machine otherwise).
    #[arg(long, value_name = "HOST")]
    pub hostname: Option<String>,
    /// Register the device disabled.
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Device id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    #[command(flatten)]
    pub conn: Conn,
}

/// A device as printed by `device list --json` (an array of these) and `device show --json`.
/// Fields: `id`, `name`, `description`, `platform` (`linux`/`windows`), `hostname`,
/// `enabled`, `last_seen` (RFC 3339 or null), `created_at`, `updated_at`, `metadata` (the
/// client's version and OS as last reported), `job_count`; `show` adds `jobs`.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct DeviceOut {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub platform: String,
    pub hostname: Option<String>,
    pub enabled: bool,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub metadata: Option<Value>,
    pub job_count: i64,
}

/// A job line of `device show --json`: `id`, `name`, `enabled`, `source_paths`.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct DeviceJob {
    pub id: uuid::Uuid,
    pub name: String,
    pub enabled: bool,
    pub source_paths: Vec<String>,
}

/// `device show --json`: the [`DeviceOut`] fields plus `jobs`.
#[derive(Debug, Serialize)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: DeviceOut,
    pub jobs: Vec<DeviceJob>,
}

const DEVICE_SELECT: &str = "SELECT d.id, d.name, d.description, d.platform, d.hostname, d.enabled, \
     d.last_seen, d.created_at, d.updated_at, d.metadata, \
     (SELECT count(*) FROM backup_jobs j WHERE j.device_id = d.id) AS job_count FROM devices d";

pub async fn run(config_path: &Path, cmd: DeviceCommand) -> anyhow::Result<u8> {
    explain(dispatch(config_path, cmd).await)
}

async fn dispatch(config_path: &Path, cmd: DeviceCommand) -> anyhow::Result<u8> {
    match cmd {
        DeviceCommand::List(a) => list(config_path, a).await,
        DeviceCommand::Show(a) => show(config_path, a).await,
        DeviceCommand::Add(a) => add(config_path, a).await,
        DeviceCommand::Enroll(a) => crate::ops::enroll::enroll(config_path, a).await,
        DeviceCommand::Enable(a) => set_enabled(config_path, a, true).await,
        DeviceCommand::Disable(a) => set_enabled(config_path, a, false).await,
        DeviceCommand::Rm(a) => rm(config_path, a).await,
    }
}

pub async fn find(pool: &PgPool, id: &str) -> anyhow::Result<DeviceOut> {
    sqlx::query_as::<_, DeviceOut>(&format!("{DEVICE_SELECT} WHERE d.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| {
            usage_err!(
                "no device with id {id:?} exists; list devices with `restic-fleet device list`"
            )
        })
}

async fn list(config_path: &Path, a: ListArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let rows: Vec<DeviceOut> = sqlx::query_as(&format!("{DEVICE_SELECT} ORDER BY d.id"))
        .fetch_all(&pool)
        .await?;
    if a.conn.json {
        print_json(&rows)?;
        return Ok(exit::SUCCESS);
    }
    if rows.is_empty() {
        println!(
            "no devices; add one with `restic-fleet device add ID --name NAME --platform linux`"
        );
        return Ok(exit::SUCCESS);
    }
    let now = Utc::now();
    let mut t = output::table(&["id", "name", "platform", "enabled", "jobs", "last seen"]);
    for d in &rows {
        t.add_row(vec![
            d.id.clone(),
            d.name.clone(),
            d.platform.clone(),
            output::yes_no(d.enabled).to_string(),
            d.job_count.to_string(),
            output::ago(d.last_seen, now),
        ]);
    }
    println!("{}", output::render(&t));
    Ok(exit::SUCCESS)
}

async fn show(config_path: &Path, a: IdArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let device = find(&pool, &a.id).await?;
    let jobs: Vec<DeviceJob> = sqlx::query_as(
        "SELECT id, name, enabled, source_paths FROM backup_jobs WHERE device_id = $1 ORDER BY name",
    )
    .bind(&a.id)
    .fetch_all(&pool)
    .await?;
    if a.conn.json {
        print_json(&DeviceDetail { device, jobs })?;
        return Ok(exit::SUCCESS);
    }
    let now = Utc::now();
    let d = &device;
    println!("id:          {}", printable(&d.id));
    println!("name:        {}", printable(&d.name));
    if let Some(desc) = &d.description {
        println!("description: {}", printable(desc));
    }
    println!("platform:    {}", printable(&d.platform));
    println!(
        "hostname:    {}",
        printable(d.hostname.as_deref().unwrap_or("-"))
    );
    println!("enabled:     {}", output::yes_no(d.enabled));
    println!(
        "last seen:   {} ({})",
        output::time(d.last_seen),
        output::ago(d.last_seen, now)
    );
    println!("created:     {}", output::time(Some(d.created_at)));
    if let Some(v) = d
        .metadata
        .as_ref()
        .and_then(|m| m.get("client_version"))
        .and_then(|v| v.as_str())
    {
        println!("client:      restic-fleet {}", printable(v));
    }
    if jobs.is_empty() {
        println!("jobs:        none");
    } else {
        let mut t = output::table(&["job id", "name", "enabled", "paths"]);
        output::keep_whole(&mut t, 0);
        for j in &jobs {
            t.add_row([
                j.id.to_string().into(),
                j.name.clone().into(),
                output::yes_no(j.enabled).into(),
                output::lines(&j.source_paths),
            ]);
        }
        println!("jobs:\n{}", output::render(&t));
    }
    Ok(exit::SUCCESS)
}

/// A device name: 1 to 255 characters without control characters (it is printed in tables
/// and reports, where a newline or an escape sequence would forge output).
pub fn validate_device_name(name: &str) -> anyhow::Result<String> {
    let n = name.trim();
    if n.is_empty() || n.len() > 255 || n.chars().any(|c| c.is_control()) {
        return Err(usage_err!(
            "device name {name:?} must be 1 to 255 characters without control characters; give \
             the device a readable name with --name"
        ));
    }
    Ok(n.to_string())
}

async fn add(config_path: &Path, a: AddArgs) -> anyhow::Result<u8> {
    crate::local::config::validate_device_id(&a.id).map_err(|_| {
        usage_err!(
            "device id {:?} must be 1 to 255 characters of printable text without leading or \
             trailing spaces",
            a.id
        )
    })?;
    let name = validate_device_name(a.name.as_deref().unwrap_or(&a.id))?;
    for (flag, v) in [
        ("--description", &a.description),
        ("--hostname", &a.hostname),
    ] {
        if let Some(v) = v
            && v.chars().any(|c| c.is_control() && c != '\n')
        {
            return Err(usage_err!(
                "{flag} {v:?} must not contain control characters"
            ));
        }
    }
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let exists: Option<String> = sqlx::query_scalar("SELECT id FROM devices WHERE id = $1")
        .bind(&a.id)
        .fetch_optional(&pool)
        .await?;
    if exists.is_some() {
        return Err(usage_err!(
            "a device with id {:?} already exists; show it with `restic-fleet device show {}`",
            a.id,
            crate::domain::quote::posix(&a.id)
        ));
    }
    let res = sqlx::query(
        "INSERT INTO devices (id, name, description, platform, hostname, enabled) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&a.id)
    .bind(&name)
    .bind(a.description.as_deref())
    .bind(a.platform.as_str())
    .bind(a.hostname.as_deref())
    .bind(!a.disabled)
    .execute(&pool)
    .await;
    if let Err(sqlx::Error::Database(db)) = &res
        && db.code().as_deref() == Some("23505")
    {
        return Err(usage_err!("a device with id {:?} already exists", a.id));
    }
    res?;
    let device = find(&pool, &a.id).await?;
    if a.conn.json {
        print_json(&device)?;
    } else {
        println!(
            "added device {:?} ({}, {}); `restic-fleet device enroll {}` gives it its database \
             login and prints the line to run on the machine",
            device.id,
            device.name,
            device.platform,
            crate::domain::quote::posix(&device.id)
        );
    }
    Ok(exit::SUCCESS)
}

async fn set_enabled(config_path: &Path, a: IdArgs, enabled: bool) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let n = sqlx::query("UPDATE devices SET enabled = $2, updated_at = NOW() WHERE id = $1")
        .bind(&a.id)
        .bind(enabled)
        .execute(&pool)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(usage_err!(
            "no device with id {:?} exists; list devices with `restic-fleet device list`",
            a.id
        ));
    }
    let device = find(&pool, &a.id).await?;
    if a.conn.json {
        print_json(&device)?;
    } else {
        println!(
            "device {:?} {}",
            a.id,
            if enabled { "enabled" } else { "disabled" }
        );
    }
    Ok(exit::SUCCESS)
}

async fn rm(config_path: &Path, a: RmArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let device = find(&pool, &a.id).await?;
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE device_id = $1")
        .bind(&a.id)
        .fetch_one(&pool)
        .await?;
    confirm(
        &format!(
            "remove device {:?} with its {} job(s), their schedules and {runs} recorded run(s)",
            a.id, device.job_count
        ),
        a.yes,
    )?;
    // The login goes with the device, in the same transaction: a removed device can no
    // longer connect, and a failed drop leaves the device in place.
    let mut tx = pool.begin().await?;
    let role = crate::ops::enroll::drop_role(&mut tx, &a.id).await?;
    sqlx::query("DELETE FROM devices WHERE id = $1")
        .bind(&a.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if a.conn.json {
        print_json(&serde_json::json!({"id": a.id, "removed": true, "dropped_role": role}))?;
    } else {
        match &role {
            Some(r) => println!(
                "removed device {:?} and dropped its database role {r}",
                a.id
            ),
            None => println!("removed device {:?}", a.id),
        }
    }
    Ok(exit::SUCCESS)
}
