//! Command-line definitions (clap derive). The man page and shell completions are generated
//! from these.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands::run::TriggeredBy;

#[derive(Debug, Parser)]
#[command(
    name = "restic-fleet",
    version,
    about = "Back up a fleet of Linux and Windows machines with restic, driven by one PostgreSQL database",
    long_about = None,
    after_help = "Exit codes: 0 success, 1 failure, 2 usage or configuration error, \
                  3 backup finished with warnings, 4 skipped (already running or concurrency limit), \
                  130 cancelled."
)]
pub struct Cli {
    /// Config file (default: /etc/restic-fleet/config.toml as root,
    /// $XDG_CONFIG_HOME/restic-fleet/config.toml otherwise, %ProgramData%\restic-fleet\config.toml
    /// on Windows).
    // i14: hide_env_values: `--help` showed an empty `[env: RESTIC_FLEET_CONFIG=]`
    #[arg(
        long,
        global = true,
        env = "RESTIC_FLEET_CONFIG",
        hide_env_values = true,
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,

    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enrol this machine: write the local config and register the device.
    Init(InitArgs),
    /// Run one backup job now and record it.
    Run(RunArgs),
    /// Install this device's schedules as timers/tasks, heartbeat, and catch up missed runs.
    Sync(crate::commands::sync::SyncArgs),
    /// Run records kept on this device while the database was away.
    #[command(subcommand)]
    Spool(crate::local::spool::SpoolCommand),
    /// Database administration.
    #[command(subcommand)]
    Db(DbCommand),
    /// Schedules of backup jobs.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Import a Relica Backup configuration (devices, jobs with their UUIDs, schedules, and
    /// optionally run history) from a Relica client cache file.
    RelicaMigrate(crate::commands::relica_migrate::RelicaMigrateArgs),
    /// Devices of the fleet.
    #[command(subcommand)]
    Device(crate::commands::device::DeviceCommand),
    /// Backup jobs.
    #[command(subcommand)]
    Job(crate::commands::job::JobCommand),
    /// Global and per-device settings.
    #[command(subcommand)]
    Settings(crate::commands::settings::SettingsCommand),
    /// Recorded backup runs.
    #[command(subcommand)]
    Runs(crate::commands::runs::RunsCommand),
    /// Is everything backed up? Exit code 0 only when every enabled job is ok and maintenance
    /// is neither overdue nor failing, else 1.
    Status(crate::commands::status::StatusArgs),
    /// Print the fleet's state as Prometheus metrics (for node_exporter's textfile collector).
    Metrics(crate::commands::metrics::MetricsArgs), // i12
    /// Forget (per job retention), prune and check the shared repository; only on the
    /// maintenance_device (exit 4 elsewhere unless --force).
    Maintain(crate::commands::maintain::MaintainArgs), // i11
    /// List the repository's snapshots with their job and device names.
    Snapshots(crate::commands::snapshots::SnapshotsArgs), // i11
    /// Restore a job's snapshot (latest by default) into a directory.
    Restore(crate::commands::restore::RestoreArgs), // i11
    /// Delete finished runs older than the setting run_retention_days.
    Cleanup(crate::commands::cleanup::CleanupArgs),
    /// Print shell completions.
    Completions(crate::commands::docs::CompletionsArgs),
    /// Print the man page (generated from these definitions).
    Man(crate::commands::docs::ManArgs),
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Print the next fire times of a schedule and the systemd OnCalendar= lines for it.
    Preview(crate::commands::schedule_preview::PreviewArgs),
    /// Add a schedule to a job (--cron EXPR or --interval SECONDS).
    Add(crate::commands::schedule::AddArgs),
    /// List schedules.
    List(crate::commands::schedule::ListArgs),
    /// Remove a schedule.
    Rm(crate::commands::schedule::RmArgs),
    /// Enable a schedule (its next run is computed again).
    Enable(crate::commands::schedule::IdArgs),
    /// Disable a schedule.
    Disable(crate::commands::schedule::IdArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// PostgreSQL URL, e.g. postgres://backup_client:PASSWORD@db.example.com/backup_control.
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

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The backup job: its UUID or its name on this device.
    #[arg(value_name = "JOB")]
    pub job: String,
    /// What started this run (recorded in runs.triggered_by).
    #[arg(long, value_enum, default_value = "manual")]
    pub triggered_by: TriggeredBy,
    /// Run a disabled job once anyway.
    #[arg(long)]
    pub force: bool,
    /// Print the recorded run as JSON instead of a sentence (no progress bar).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply missing schema migrations (needs a role that may change the schema).
    Migrate {
        /// Database URL (default: DATABASE_URL, else the config's).
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
    },
    /// Create or update the roles backup_admin, backup_client and backup_viewer with their
    /// grants (passwords from a prompt or --*-password-file; safe to run again).
    Roles(crate::commands::db::RolesArgs),
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let config_path = crate::local::config::resolve_path(cli.config.as_deref());
    match cli.command {
        Command::Init(args) => {
            let report = crate::commands::init::init(&config_path, &args).await?;
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
            Ok(crate::domain::exit::SUCCESS)
        }
        Command::Run(args) => {
            let cfg = crate::local::config::load(&config_path)?;
            let opts = crate::commands::run::RunOptions {
                job: args.job,
                triggered_by: args.triggered_by,
                force: args.force,
                json: args.json,
                progress: crate::commands::run::want_progress(args.json),
                config_path: config_path.clone(),
            };
            crate::commands::run::run(&cfg, opts).await
        }
        Command::Sync(args) => {
            let cfg = crate::local::config::load(&config_path)?;
            crate::commands::sync::run(&cfg, &config_path, &args).await
        }
        Command::Spool(c) => crate::local::spool::run(&config_path, c).await,
        Command::Db(DbCommand::Migrate { database_url }) => {
            let url = crate::commands::database_url(&config_path, database_url.as_deref())?;
            let pool = crate::store::db::connect_no_migrate(&url).await?;
            crate::store::db::migrate(&pool).await?;
            println!(
                "database schema is at version {}",
                crate::store::db::latest_version()
            );
            Ok(crate::domain::exit::SUCCESS)
        }
        Command::Db(DbCommand::Roles(a)) => crate::commands::db::run(&config_path, a).await,
        Command::Device(c) => crate::commands::device::run(&config_path, c).await,
        Command::Job(c) => crate::commands::job::run(&config_path, c).await,
        Command::Settings(c) => crate::commands::settings::run(&config_path, c).await,
        Command::Runs(c) => crate::commands::runs::run(&config_path, c).await,
        Command::Status(a) => crate::commands::status::run(&config_path, a).await,
        Command::Metrics(a) => crate::commands::metrics::run(&config_path, a).await, // i12
        Command::Cleanup(a) => crate::commands::cleanup::run(&config_path, a).await,
        // i11: maintenance, snapshots, restore
        Command::Maintain(a) => crate::commands::maintain::run(&config_path, &a).await,
        Command::Snapshots(a) => crate::commands::snapshots::snapshots(&config_path, a).await,
        Command::Restore(a) => crate::commands::restore::run(&config_path, a).await,
        Command::Completions(a) => crate::commands::docs::completions(a),
        Command::Man(a) => crate::commands::docs::man(a),
        Command::Schedule(ScheduleCommand::Add(a)) => {
            crate::commands::schedule::add(&config_path, a).await
        }
        Command::Schedule(ScheduleCommand::List(a)) => {
            crate::commands::schedule::list(&config_path, a).await
        }
        Command::Schedule(ScheduleCommand::Rm(a)) => {
            crate::commands::schedule::rm(&config_path, a).await
        }
        Command::Schedule(ScheduleCommand::Enable(a)) => {
            crate::commands::schedule::enable(&config_path, a).await
        }
        Command::Schedule(ScheduleCommand::Disable(a)) => {
            crate::commands::schedule::disable(&config_path, a).await
        }
        Command::Schedule(ScheduleCommand::Preview(args)) => {
            crate::commands::schedule_preview::run(&config_path, &args).await
        }
        Command::RelicaMigrate(args) => {
            crate::commands::relica_migrate::run(&config_path, &args).await
        }
    }
}
