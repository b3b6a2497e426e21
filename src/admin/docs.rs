//! `restic-fleet completions SHELL` and `restic-fleet man`, generated from the clap
//! definitions in [`crate::cli`].

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use crate::exit;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (restic-fleet.1, restic-fleet-job-add.1, ...) into this
    /// directory instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs) -> anyhow::Result<u8> {
    let mut cmd = crate::cli::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "restic-fleet", &mut std::io::stdout());
    Ok(exit::SUCCESS)
}

pub fn man(args: ManArgs) -> anyhow::Result<u8> {
    let cmd = crate::cli::Cli::command();
    match args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| {
                crate::usage_err!("cannot create the directory {}: {e}", dir.display())
            })?;
            clap_mangen::generate_to(cmd, &dir)?;
            println!("man pages written to {}", dir.display());
        }
        None => {
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        }
    }
    Ok(exit::SUCCESS)
}
