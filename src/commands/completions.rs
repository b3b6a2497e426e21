//! `restic-fleet completions SHELL`: shell completions generated from the clap definition,
//! which `cli.rs` hands in (a command never imports the CLI above it).

use clap::Args;

use crate::domain::exit;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the completion script of `cmd` (the whole CLI) for the shell asked for.
pub fn run(args: CompletionsArgs, mut cmd: clap::Command) -> anyhow::Result<u8> {
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
