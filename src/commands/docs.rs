//! `restic-fleet completions SHELL` and `restic-fleet man`, generated from the clap
//! definitions in [`crate::cli`].

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use crate::domain::exit;

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
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "restic-fleet", &mut script);
    let mut script = String::from_utf8_lossy(&script).into_owned();
    if args.shell == clap_complete::Shell::Bash {
        script = fix_bash_state_names(&script);
    }
    print!("{script}");
    Ok(exit::SUCCESS)
}

/// clap_complete's bash script names its states after the binary with `-` turned into `__`
/// (`restic__fleet__subcmd__job`), but writes the case labels that complete each state with the
/// hyphen turned into `__subcmd__` (`restic__subcmd__fleet__subcmd__job`), so nothing after
/// the first word ever completes. The labels are renamed to the states' names.
fn fix_bash_state_names(script: &str) -> String {
    script.replace("restic__subcmd__fleet", "restic__fleet")
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
