//! The `--json` field reference of `restic-fleet man` names every command with `--json`. It
//! lives here, not beside the reference in `output/`, because it walks the whole CLI
//! (`cli.rs`), which the output layer may not import.

use clap::CommandFactory;
use restic_fleet::output::json_fields::JSON_FIELDS;

/// Every command with a `--json` flag has an entry naming it.
#[test]
fn every_json_command_is_documented() {
    fn walk(cmd: &clap::Command, path: &mut Vec<String>, missing: &mut Vec<String>) {
        if cmd.get_arguments().any(|a| a.get_long() == Some("json")) {
            let documented = JSON_FIELDS.iter().any(|(entry, _)| {
                let words: Vec<&str> = entry
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .filter(|w| !w.is_empty())
                    .collect();
                entry.starts_with(path[0].as_str())
                    && path.iter().all(|p| words.contains(&p.as_str()))
            });
            if !documented {
                missing.push(path.join(" "));
            }
        }
        for sub in cmd.get_subcommands() {
            path.push(sub.get_name().to_string());
            walk(sub, path, missing);
            path.pop();
        }
    }
    let cli = restic_fleet::cli::Cli::command();
    let mut missing = Vec::new();
    for sub in cli.get_subcommands() {
        walk(sub, &mut vec![sub.get_name().to_string()], &mut missing);
    }
    assert!(
        missing.is_empty(),
        "--json without a field reference: {missing:?}"
    );
}
