//! `restic-fleet man`: the manual page (or one page per command) generated from the clap
//! definition that `cli.rs` hands in, followed by the `--json` field reference.

use std::path::PathBuf;

use clap::Args;

use crate::domain::exit;

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (restic-fleet.1, restic-fleet-job-add.1, ...) into this
    /// directory instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Prints the main page of `cmd` (the whole CLI), or writes every page into `--out-dir`.
pub fn run(args: ManArgs, cmd: clap::Command) -> anyhow::Result<u8> {
    match args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| {
                crate::usage_err!("cannot create the directory {}: {e}", dir.display())
            })?;
            clap_mangen::generate_to(cmd, &dir)?;
            println!("man pages written to {}", dir.display());
        }
        None => {
            // The page as clap_mangen renders it, then the --json field reference and where the
            // per-command pages come from.
            let man = clap_mangen::Man::new(cmd);
            let mut page = Vec::new();
            man.render(&mut page)?;
            let mut page = String::from_utf8_lossy(&page).into_owned();
            page.push_str(&crate::output::json_fields::roff());
            print!("{page}");
        }
    }
    Ok(exit::SUCCESS)
}
