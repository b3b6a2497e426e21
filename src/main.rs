//! The `restic-fleet` binary: parses the command line, starts the runtime and logging, runs the
//! command ([`restic_fleet::cli::dispatch`]) and maps its outcome to an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use restic_fleet::cli::{self, Cli};
use restic_fleet::domain::exit;
use restic_fleet::output;
use restic_fleet::store::db;

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
    // Behind PgBouncer a pool may still hold a transaction in flight; it is committed before exit.
    let result = runtime.block_on(async {
        let result = cli::dispatch(cli).await;
        db::finish().await;
        result
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = exit::code_of(&err);
            // A skip is an outcome, not an error: "skipped: not due, next run at ...".
            let text = if code == exit::SKIPPED {
                err.to_string()
            } else if err.downcast_ref::<exit::Failure>().is_some() {
                format!("error: {err}")
            } else {
                format!("error: {err:#}")
            };
            // An error may quote restic, a hook or the database: no raw escape sequences.
            eprintln!("{}", output::printable_lines(&text));
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
