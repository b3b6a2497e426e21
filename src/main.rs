use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use restic_fleet::cli::{Cli, Command, DbCommand, ScheduleCommand};
use restic_fleet::{admin, config, db, exit, init, preview, run};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    // i13: db::finish commits what a PgBouncer-mode pool still has in flight before exit.
    let result = runtime.block_on(async {
        let result = dispatch(cli).await;
        db::finish().await;
        result
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = exit::code_of(&err);
            // i14: a skip is not an error ("skipped: not due, next run at ...")
            let text = if code == exit::SKIPPED {
                err.to_string()
            } else if err.downcast_ref::<exit::Failure>().is_some() {
                format!("error: {err}")
            } else {
                format!("error: {err:#}")
            };
            // An error may quote restic, a hook or the database: no raw escape sequences.
            eprintln!("{}", admin::output::printable_lines(&text));
            ExitCode::from(code)
        }
    }
}

/// Logs go to stderr: coloured with times on a terminal; plain `LEVEL message` lines otherwise,
/// which is what journald and the Windows task history want (they add their own timestamps).
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("RESTIC_FLEET_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("restic_fleet={default},warn"))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.without_time().with_ansi(false).init();
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let config_path = config::resolve_path(cli.config.as_deref());
    match cli.command {
        Command::Init(args) => {
            let report = init::init(&config_path, &args).await?;
            if args.json {
                admin::output::print_json(&report)?;
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
        Command::Run(args) => {
            let cfg = config::load(&config_path)?;
            let opts = run::RunOptions {
                job: args.job,
                triggered_by: args.triggered_by,
                force: args.force,
                json: args.json,
                progress: run::want_progress(args.json),
                config_path: config_path.clone(),
            };
            run::run(&cfg, opts).await
        }
        Command::Sync(args) => {
            let cfg = config::load(&config_path)?;
            restic_fleet::sync::run(&cfg, &config_path, &args).await
        }
        Command::Spool(c) => restic_fleet::spool::run(&config_path, c).await,
        Command::Db(DbCommand::Migrate { database_url }) => {
            let url = admin::database_url(&config_path, database_url.as_deref())?;
            let pool = db::connect_no_migrate(&url).await?;
            db::migrate(&pool).await?;
            println!("database schema is at version {}", db::latest_version());
            Ok(exit::SUCCESS)
        }
        Command::Db(DbCommand::Roles(a)) => admin::roles::run(&config_path, a).await,
        Command::Device(c) => admin::device::run(&config_path, c).await,
        Command::Job(c) => admin::job::run(&config_path, c).await,
        Command::Settings(c) => admin::settings::run(&config_path, c).await,
        Command::Runs(c) => admin::runs::run(&config_path, c).await,
        Command::Status(a) => admin::status::run(&config_path, a).await,
        Command::Metrics(a) => restic_fleet::monitor::metrics::run(&config_path, a).await, // i12
        Command::Cleanup(a) => admin::cleanup::run(&config_path, a).await,
        // i11: maintenance, snapshots, restore
        Command::Maintain(a) => restic_fleet::maintenance::run(&config_path, &a).await,
        Command::Snapshots(a) => restic_fleet::snapshots::snapshots(&config_path, a).await,
        Command::Restore(a) => restic_fleet::snapshots::restore(&config_path, a).await,
        Command::Completions(a) => admin::docs::completions(a),
        Command::Man(a) => admin::docs::man(a),
        Command::Schedule(ScheduleCommand::Add(a)) => admin::schedule::add(&config_path, a).await,
        Command::Schedule(ScheduleCommand::List(a)) => admin::schedule::list(&config_path, a).await,
        Command::Schedule(ScheduleCommand::Rm(a)) => admin::schedule::rm(&config_path, a).await,
        Command::Schedule(ScheduleCommand::Enable(a)) => {
            admin::schedule::enable(&config_path, a).await
        }
        Command::Schedule(ScheduleCommand::Disable(a)) => {
            admin::schedule::disable(&config_path, a).await
        }
        Command::Schedule(ScheduleCommand::Preview(args)) => {
            preview::run(&config_path, &args).await
        }
        Command::RelicaMigrate(args) => {
            restic_fleet::relica_migrate::run(&config_path, &args).await
        }
    }
}
