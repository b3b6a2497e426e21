//! The top of the command line (clap derive): the program's options, the list of subcommands
//! whose `Args` live beside their handlers in `commands/`, and `dispatch`, one line per
//! subcommand. The man page and shell completions are generated from this definition.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "restic-fleet",
    version = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("RESTIC_FLEET_GIT_REV"), ")"),
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
    // Without hide_env_values, `--help` shows an empty `[env: RESTIC_FLEET_CONFIG=]`.
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
    Init(crate::commands::init::InitArgs),
    /// Run one backup job now and record it.
    Run(crate::commands::run::RunArgs),
    /// Install this device's schedules as timers/tasks, heartbeat, and catch up missed runs.
    Sync(crate::commands::sync::SyncArgs),
    /// Run records kept on this device while the database was away.
    #[command(subcommand)]
    Spool(crate::commands::spool::SpoolCommand),
    /// Database administration.
    #[command(subcommand)]
    Db(crate::commands::db::DbCommand),
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
    /// Write the fleet's state as one self-contained HTML page: verdicts, problems, a heat map
    /// of each job's last days, and the repository's growth.
    Report(crate::commands::report::ReportArgs),
    /// Print the fleet's state as Prometheus metrics (for node_exporter's textfile collector).
    Metrics(crate::commands::metrics::MetricsArgs),
    /// Forget (per job retention), prune and check the shared repository; only on the
    /// maintenance_device (exit 4 elsewhere unless --force).
    Maintain(crate::commands::maintain::MaintainArgs),
    /// List the repository's snapshots with their job and device names.
    Snapshots(crate::commands::snapshots::SnapshotsArgs),
    /// The fleet's repositories: list (default), init the missing ones, move a device into a
    /// repository of its own.
    Repositories(crate::commands::repositories::RepositoriesArgs),
    /// Restore a job's snapshot (latest by default) into a directory.
    Restore(crate::commands::restore::RestoreArgs),
    /// Delete finished runs older than the setting run_retention_days.
    Cleanup(crate::commands::cleanup::CleanupArgs),
    /// Print shell completions.
    Completions(crate::commands::completions::CompletionsArgs),
    /// Print the man page (generated from these definitions).
    Man(crate::commands::man::ManArgs),
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Print the next fire times of a schedule and the systemd OnCalendar= lines for it.
    Preview(crate::commands::schedule_preview::PreviewArgs),
    /// Add a schedule to a job (--cron EXPR or --interval DURATION).
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

/// Runs the subcommand; its `Ok` is the exit code, its error carries one.
pub async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let config_path = crate::local::config::resolve_path(cli.config.as_deref());
    match cli.command {
        Command::Init(args) => crate::commands::init::run(&config_path, &args).await,
        Command::Run(args) => crate::commands::run::from_cli(&config_path, args).await,
        Command::Sync(args) => {
            let cfg = crate::local::config::load(&config_path)?;
            crate::commands::sync::run(&cfg, &config_path, &args).await
        }
        Command::Spool(c) => crate::commands::spool::run(&config_path, c).await,
        Command::Db(c) => crate::commands::db::run(&config_path, c).await,
        Command::Device(c) => crate::commands::device::run(&config_path, c).await,
        Command::Job(c) => crate::commands::job::run(&config_path, c).await,
        Command::Settings(c) => crate::commands::settings::run(&config_path, c).await,
        Command::Runs(c) => crate::commands::runs::run(&config_path, c).await,
        Command::Status(a) => crate::commands::status::run(&config_path, a).await,
        Command::Metrics(a) => crate::commands::metrics::run(&config_path, a).await,
        Command::Report(a) => crate::commands::report::run(&config_path, a).await,
        Command::Cleanup(a) => crate::commands::cleanup::run(&config_path, a).await,
        Command::Maintain(a) => crate::commands::maintain::run(&config_path, &a).await,
        Command::Snapshots(a) => crate::commands::snapshots::snapshots(&config_path, a).await,
        Command::Repositories(a) => crate::commands::repositories::run(&config_path, a).await,
        Command::Restore(a) => crate::commands::restore::run(&config_path, a).await,
        Command::Completions(a) => crate::commands::completions::run(a, Cli::command()),
        Command::Man(a) => crate::commands::man::run(a, Cli::command()),
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

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definitions_are_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
