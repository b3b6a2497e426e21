//! The secret setting `repository_environment`: backend credentials for restic (S3, B2, Azure,
//! GCS, rest-server, ...) as `KEY=VALUE` lines, global or per device.
//!
//! The variables go into restic's environment only: never into unit files, task XML, argv,
//! logs or stored output (run output is redacted with their values). The text is validated
//! where it is written (`settings set`) and again where it is used (`run`), because the
//! database decides what a device executes: variables that run programs, load code, or change
//! the repository or its password are refused, since restic-fleet sets those itself.

use crate::domain::settings::Settings;

/// The setting's key.
pub const KEY: &str = "repository_environment";

/// Variables restic-fleet owns or that would let the database run code on a device.
const REFUSED: &[(&str, &str)] = &[
    (
        "RESTIC_REPOSITORY",
        "the repository comes from the repository_url setting",
    ),
    (
        "RESTIC_REPOSITORY_FILE",
        "the repository comes from the repository_url setting",
    ),
    (
        "RESTIC_PASSWORD",
        "the password comes from the repository_password setting",
    ),
    (
        "RESTIC_PASSWORD_FILE",
        "the password comes from the repository_password setting",
    ),
    ("RESTIC_PASSWORD_COMMAND", "it runs a program"),
    (
        "RESTIC_CACHE_DIR",
        "the cache directory comes from the repository_cache_dir setting",
    ),
    ("RESTIC_HOST", "the host is the device id"),
    ("PATH", "it chooses which programs run"),
    (
        "HOME",
        "it chooses the ssh configuration, which can run programs",
    ),
    ("SSH_ASKPASS", "it runs a program"),
    ("SSH_ASKPASS_REQUIRE", "it runs a program"),
    ("BASH_ENV", "it runs a program"),
    ("ENV", "it runs a program"),
    ("SHELL", "it runs a program"),
    ("IFS", "it changes how shells split commands"),
];

/// Prefixes of refused variables (dynamic loader, restic's copy source, Go runtime hooks).
const REFUSED_PREFIXES: &[(&str, &str)] = &[
    ("LD_", "it loads code into every program"),
    ("DYLD_", "it loads code into every program"),
    (
        "RESTIC_FROM_",
        "restic-fleet never copies from another repository",
    ),
    (
        "RESTIC_PASSWORD",
        "the password comes from the repository_password setting",
    ),
    (
        "RESTIC_REPOSITORY",
        "the repository comes from the repository_url setting",
    ),
];

/// Parses and checks the setting's text: one `KEY=VALUE` a line, blank lines and lines
/// starting with `#` ignored. The error is one sentence naming the line and the fix.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(
                "line {n} of {KEY} is not KEY=VALUE; write one variable a line, like \
                 AWS_ACCESS_KEY_ID=AKIA..."
            ));
        };
        let key = key.trim();
        let valid = !key.is_empty()
            && key.len() <= 128
            && key.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
            && key
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(format!(
                "line {n} of {KEY}: {:?} is not an environment variable name (upper-case \
                 letters, digits and underscores, like B2_ACCOUNT_ID)",
                crate::domain::text::truncate_str(key, 40)
            ));
        }
        let why = REFUSED
            .iter()
            .find(|(k, _)| *k == key)
            .or_else(|| REFUSED_PREFIXES.iter().find(|(p, _)| key.starts_with(p)))
            .map(|(_, why)| *why);
        if let Some(why) = why {
            return Err(format!(
                "line {n} of {KEY}: {key} is not allowed because {why}; remove that line"
            ));
        }
        if value.contains('\0') {
            return Err(format!(
                "line {n} of {KEY}: the value of {key} contains a NUL character"
            ));
        }
        if out.iter().any(|(k, _)| k == key) {
            return Err(format!(
                "line {n} of {KEY}: {key} is given twice; keep one of the lines"
            ));
        }
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

/// The variables in force on this device, or a usage error naming the setting.
pub fn from_settings(settings: &Settings) -> anyhow::Result<Vec<(String, String)>> {
    match settings.get(KEY) {
        None => Ok(Vec::new()),
        Some(text) => parse(text).map_err(|e| {
            crate::usage_err!(
                "{e} (fix it with `restic-fleet settings set {KEY} -`, which reads the lines \
                 from standard input)"
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_credentials_and_refuses_what_runs_programs() {
        let v = parse("# b2\nB2_ACCOUNT_ID=abc\n\nB2_ACCOUNT_KEY=k=with=equals\r\n").unwrap();
        assert_eq!(
            v,
            vec![
                ("B2_ACCOUNT_ID".to_string(), "abc".to_string()),
                ("B2_ACCOUNT_KEY".to_string(), "k=with=equals".to_string())
            ]
        );
        for bad in [
            "RESTIC_PASSWORD_COMMAND=cat /x",
            "RESTIC_REPOSITORY=/elsewhere",
            "RESTIC_PASSWORD=x",
            "LD_PRELOAD=/tmp/x.so",
            "PATH=/tmp",
            "HOME=/tmp",
            "RESTIC_FROM_REPOSITORY=/x",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("not allowed"), "{bad}: {e}");
        }
        assert!(
            parse("lower=x")
                .unwrap_err()
                .contains("not an environment variable")
        );
        assert!(parse("NOEQUALS").unwrap_err().contains("line 1"));
        assert!(parse("A=1\nA=2").unwrap_err().contains("twice"));
        assert_eq!(parse("").unwrap(), vec![]);
    }
}
