//! Command-line definitions (clap derive). The man page and shell completions are generated
//! from these.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::run::TriggeredBy;

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
    Sync(crate::sync::SyncArgs),
    /// Run records kept on this device while the database was away.
    #[command(subcommand)]
    Spool(crate::spool::SpoolCommand),
    /// Database administration.
    #[command(subcommand)]
    Db(DbCommand),
    /// Schedules of backup jobs.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Import a Relica Backup configuration (devices, jobs with their UUIDs, schedules, and
    /// optionally run history) from a Relica client cache file.
    RelicaMigrate(crate::relica_migrate::RelicaMigrateArgs),
    /// Devices of the fleet.
    #[command(subcommand)]
    Device(crate::admin::device::DeviceCommand),
    /// Backup jobs.
    #[command(subcommand)]
    Job(crate::admin::job::JobCommand),
    /// Global and per-device settings.
    #[command(subcommand)]
    Settings(crate::admin::settings::SettingsCommand),
    /// Recorded backup runs.
    #[command(subcommand)]
    Runs(crate::admin::runs::RunsCommand),
    /// Is everything backed up? Exit code 0 only when every enabled job is ok and maintenance
    /// is neither overdue nor failing, else 1.
    Status(crate::admin::status::StatusArgs),
    /// Print the fleet's state as Prometheus metrics (for node_exporter's textfile collector).
    Metrics(crate::monitor::metrics::MetricsArgs), // i12
    /// Forget (per job retention), prune and check the shared repository; only on the
    /// maintenance_device (exit 4 elsewhere unless --force).
    Maintain(crate::maintenance::MaintainArgs), // i11
    /// List the repository's snapshots with their job and device names.
    Snapshots(crate::snapshots::SnapshotsArgs), // i11
    /// Restore a job's snapshot (latest by default) into a directory.
    Restore(crate::snapshots::RestoreArgs), // i11
    /// Delete finished runs older than the setting run_retention_days.
    Cleanup(crate::admin::cleanup::CleanupArgs),
    /// Print shell completions.
    Completions(crate::admin::docs::CompletionsArgs),
    /// Print the man page (generated from these definitions).
    Man(crate::admin::docs::ManArgs),
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Print the next fire times of a schedule and the systemd OnCalendar= lines for it.
    Preview(crate::preview::PreviewArgs),
    /// Add a schedule to a job (--cron EXPR or --interval SECONDS).
    Add(crate::admin::schedule::AddArgs),
    /// List schedules.
    List(crate::admin::schedule::ListArgs),
    /// Remove a schedule.
    Rm(crate::admin::schedule::RmArgs),
    /// Enable a schedule (its next run is computed again).
    Enable(crate::admin::schedule::IdArgs),
    /// Disable a schedule.
    Disable(crate::admin::schedule::IdArgs),
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
    Roles(crate::admin::roles::RolesArgs),
}
