//! `restic-fleet device list|show|add|enroll|enable|disable|rm`.

use std::path::Path;

use chrono::Utc;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use sqlx::PgPool;

use crate::commands::{Conn, confirm, explain};
use crate::domain::device::validate_device_name;
use crate::domain::exit;
use crate::ops::enroll::Enrolment;
use crate::output::{self, print_json, printable};
use crate::store::devices::{DeviceOut, NewDevice};
use crate::store::jobs::DeviceJob;
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
    Enroll(EnrollArgs),
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
pub struct EnrollArgs {
    /// Device id. The device is registered first when it does not exist (then --platform is
    /// needed, as for `device add`).
    #[arg(value_name = "ID")]
    pub id: String,
    /// Human-readable name for a device registered now (default: the id).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Operating system, for a device registered now.
    #[arg(long, value_enum)]
    pub platform: Option<Platform>,
    /// The database URL as the device reaches it (default: the URL this command connects
    /// with); its user and password are replaced by the device's.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
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

/// `device show --json`: the [`DeviceOut`] fields plus `jobs`.
#[derive(Debug, Serialize)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: DeviceOut,
    pub jobs: Vec<DeviceJob>,
}

pub async fn run(config_path: &Path, cmd: DeviceCommand) -> anyhow::Result<u8> {
    explain(dispatch(config_path, cmd).await)
}

async fn dispatch(config_path: &Path, cmd: DeviceCommand) -> anyhow::Result<u8> {
    match cmd {
        DeviceCommand::List(a) => list(config_path, a).await,
        DeviceCommand::Show(a) => show(config_path, a).await,
        DeviceCommand::Add(a) => add(config_path, a).await,
        DeviceCommand::Enroll(a) => enroll(config_path, a).await,
        DeviceCommand::Enable(a) => set_enabled(config_path, a, true).await,
        DeviceCommand::Disable(a) => set_enabled(config_path, a, false).await,
        DeviceCommand::Rm(a) => rm(config_path, a).await,
    }
}

pub async fn find(pool: &PgPool, id: &str) -> anyhow::Result<DeviceOut> {
    crate::store::devices::find(pool, id).await?.ok_or_else(|| {
        usage_err!("no device with id {id:?} exists; list devices with `restic-fleet device list`")
    })
}

async fn list(config_path: &Path, a: ListArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let rows = crate::store::devices::list(&pool).await?;
    if a.conn.json {
        print_json(&rows)?;
        return Ok(exit::SUCCESS);
    }
    if rows.is_empty() {
        println!("no devices; enrol one with `restic-fleet device enroll ID --platform linux`");
        return Ok(exit::SUCCESS);
    }
    let now = Utc::now();
    let mut t = output::table(&[
        "id",
        "name",
        "platform",
        "enabled",
        "jobs",
        "last seen",
        "client",
        "restic",
    ]);
    for d in &rows {
        t.add_row(vec![
            d.id.clone(),
            d.name.clone(),
            d.platform.clone(),
            output::yes_no(d.enabled).to_string(),
            d.job_count.to_string(),
            output::ago(d.last_seen, now),
            d.client_version.as_deref().unwrap_or("unknown").to_string(),
            restic_short(d.restic_version.as_deref()),
        ]);
    }
    println!("{}", output::render(&t));
    Ok(exit::SUCCESS)
}

/// The restic version a device reported, as the number alone (`restic 0.18.0 compiled with
/// ...` is `0.18.0`), what it said instead (`not installed`), or `unknown` before it reported.
fn restic_short(reported: Option<&str>) -> String {
    match reported {
        None => "unknown".to_string(),
        Some(line) => match crate::domain::restic::Version::parse(line) {
            Some(crate::domain::restic::Version(a, b, c)) => format!("{a}.{b}.{c}"),
            None => line.to_string(),
        },
    }
}

async fn show(config_path: &Path, a: IdArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let device = find(&pool, &a.id).await?;
    let jobs = crate::store::jobs::of_device(&pool, &a.id).await?;
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
    println!(
        "client:      restic-fleet {}",
        printable(d.client_version.as_deref().unwrap_or("unknown"))
    );
    println!(
        "restic:      {}",
        printable(d.restic_version.as_deref().unwrap_or("unknown"))
    );
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
    if crate::store::devices::exists(&pool, &a.id).await? {
        return Err(usage_err!(
            "a device with id {:?} already exists; show it with `restic-fleet device show {}`",
            a.id,
            crate::domain::quote::posix(&a.id)
        ));
    }
    let new = NewDevice {
        id: &a.id,
        name: &name,
        description: a.description.as_deref(),
        platform: a.platform.as_str(),
        hostname: a.hostname.as_deref(),
        enabled: !a.disabled,
    };
    let res = crate::store::devices::insert(&pool, new).await;
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
    let n = crate::store::devices::set_enabled(&pool, &a.id, enabled).await?;
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
    let runs = crate::store::runs::count_of_device(&pool, &a.id).await?;
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
    let role = crate::store::roles::drop_device_role(&mut tx, &a.id).await?;
    crate::store::devices::delete(&mut tx, &a.id).await?;
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

/// `device enroll`: checks the arguments, then creates or rotates the device's login
/// ([`crate::ops::enroll`]) and prints the `restic-fleet init` line for the machine.
async fn enroll(config_path: &Path, a: EnrollArgs) -> anyhow::Result<u8> {
    crate::local::config::validate_device_id(&a.id)?;
    if let Some(n) = &a.name {
        validate_device_name(n)?;
    }
    let url = crate::commands::database_url(config_path, a.conn.database_url.as_deref())?;
    let public = a.public_url.clone().unwrap_or_else(|| url.clone());
    // Checked before anything is written: the device URL can be derived.
    crate::ops::enroll::with_credentials(&public, "x", "x")?;
    let pool = crate::store::db::connect(&url).await?;
    let request = crate::ops::enroll::Request {
        id: &a.id,
        name: a.name.as_deref(),
        platform: a.platform.map(Platform::as_str),
        public_url: &public,
    };
    let (report, platform) = crate::ops::enroll::enroll(&pool, &request).await?;
    if a.conn.json {
        print_json(&report)?;
        return Ok(exit::SUCCESS);
    }
    print_enrolment(&report, &platform);
    Ok(exit::SUCCESS)
}

/// What `device enroll` prints without `--json`: what happened, and the `init` line to run on
/// the machine, quoted for its shell.
fn print_enrolment(report: &Enrolment, platform: &str) {
    let rotated = report.rotated;
    println!(
        "{} device {:?}: database role {}{}",
        if rotated {
            "rotated the password of"
        } else {
            "enrolled"
        },
        report.device_id,
        report.role,
        if rotated {
            " (the old password no longer works)"
        } else {
            ""
        }
    );
    // The URL is given at init's prompt, not as an argument: an argument is in every process
    // listing of the machine and in its shell history.
    println!("on that machine, run");
    println!(
        "  restic-fleet init --device-id {} --database-url -",
        crate::domain::quote::for_platform(platform, &report.device_id)
    );
    println!("and paste this database URL at its prompt (the password is shown only this once):");
    println!("  {}", report.database_url);
}
