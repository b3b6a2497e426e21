//! The secret setting `repository_environment`: backend credentials for restic (S3, B2, Azure,
//! GCS, rest-server, ...) as `KEY=VALUE` lines, global or per device.
//!
//! The variables go into restic's environment only: never into unit files, task XML, argv,
//! logs or stored output (run output is redacted with their values). The text is validated
//! where it is written (`settings set`) and again where it is used (`run` and every command
//! that starts restic), because the database decides what a device executes and contacts: only
//! the backends' credential and endpoint variables ([`ALLOWED`]) are accepted.

use crate::domain::settings::Settings;

/// The setting's key.
pub const KEY: &str = "repository_environment";

/// The variables restic's backends read for their credentials and endpoints (restic's
/// "Environment variables" reference), and nothing else. Everything else is refused: a variable
/// that names a file, a program, a proxy, a certificate store or a library would let the
/// database decide what a device trusts, contacts or runs (`SSL_CERT_FILE`, `HTTPS_PROXY`,
/// `RCLONE_CONFIG`, `AWS_SHARED_CREDENTIALS_FILE`, `GOOGLE_APPLICATION_CREDENTIALS`, ...).
/// GCS is by value (`GOOGLE_ACCESS_TOKEN`), and of rclone only the bandwidth limit: rclone maps
/// every option of every remote to an `RCLONE_*` variable, some of which run programs (an sftp
/// remote's `ssh`, `--password-command`), so an rclone remote is configured on the device.
/// `AZURE_FORCE_CLI_CREDENTIAL` is left out because it runs the `az` program.
pub const ALLOWED: &[&str] = &[
    // S3 (and S3-compatible servers: the endpoint is in the repository URL)
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "RESTIC_AWS_ASSUME_ROLE_ARN",
    "RESTIC_AWS_ASSUME_ROLE_SESSION_NAME",
    "RESTIC_AWS_ASSUME_ROLE_EXTERNAL_ID",
    "RESTIC_AWS_ASSUME_ROLE_POLICY",
    "RESTIC_AWS_ASSUME_ROLE_REGION",
    "RESTIC_AWS_ASSUME_ROLE_STS_ENDPOINT",
    // Backblaze B2
    "B2_ACCOUNT_ID",
    "B2_ACCOUNT_KEY",
    // Azure
    "AZURE_ACCOUNT_NAME",
    "AZURE_ACCOUNT_KEY",
    "AZURE_ACCOUNT_SAS",
    "AZURE_ENDPOINT_SUFFIX",
    // Google Cloud Storage, by value
    "GOOGLE_PROJECT_ID",
    "GOOGLE_ACCESS_TOKEN",
    // OpenStack Swift
    "OS_AUTH_URL",
    "OS_REGION_NAME",
    "OS_USERNAME",
    "OS_USER_ID",
    "OS_PASSWORD",
    "OS_TENANT_ID",
    "OS_TENANT_NAME",
    "OS_USER_DOMAIN_NAME",
    "OS_USER_DOMAIN_ID",
    "OS_PROJECT_NAME",
    "OS_PROJECT_DOMAIN_NAME",
    "OS_PROJECT_DOMAIN_ID",
    "OS_TRUST_ID",
    "OS_APPLICATION_CREDENTIAL_ID",
    "OS_APPLICATION_CREDENTIAL_NAME",
    "OS_APPLICATION_CREDENTIAL_SECRET",
    "OS_STORAGE_URL",
    "OS_AUTH_TOKEN",
    "ST_AUTH",
    "ST_USER",
    "ST_KEY",
    "SWIFT_DEFAULT_CONTAINER_POLICY",
    // rest-server
    "RESTIC_REST_USERNAME",
    "RESTIC_REST_PASSWORD",
    // rclone
    "RCLONE_BWLIMIT",
];

/// Whether `key` is one of the [`ALLOWED`] backend variables.
pub fn is_allowed(key: &str) -> bool {
    ALLOWED.contains(&key)
}

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
        if !is_allowed(key) {
            return Err(format!(
                "line {n} of {KEY}: {key} is not one of the backend credential and endpoint \
                 variables restic-fleet passes to restic ({}); remove that line",
                ALLOWED.join(", ")
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
    fn accepts_backend_credentials_only() {
        let v = parse("# b2\nB2_ACCOUNT_ID=abc\n\nB2_ACCOUNT_KEY=k=with=equals\r\n").unwrap();
        assert_eq!(
            v,
            vec![
                ("B2_ACCOUNT_ID".to_string(), "abc".to_string()),
                ("B2_ACCOUNT_KEY".to_string(), "k=with=equals".to_string())
            ]
        );
        for bad in [
            "RESTIC_PASSWORD_COMMAND",
            "RESTIC_REPOSITORY",
            "RESTIC_PASSWORD",
            "RESTIC_CACHE_DIR",
            "LD_PRELOAD",
            "PATH",
            "HOME",
            "RESTIC_FROM_REPOSITORY",
            "AZURE_FORCE_CLI_CREDENTIAL",
            "AWS_PROFILE",
            "SSL_CERT_FILE",
            "HTTPS_PROXY",
            "RCLONE_CONFIG",
            "GOOGLE_APPLICATION_CREDENTIALS",
        ] {
            let e = parse(&format!("{bad}=x")).unwrap_err();
            assert!(e.contains("is not one of"), "{bad}: {e}");
            assert!(
                e.contains("B2_ACCOUNT_KEY, AZURE_ACCOUNT_NAME"),
                "{bad}: {e}"
            );
        }
        assert!(
            parse("lower=x")
                .unwrap_err()
                .contains("not an environment variable")
        );
        assert!(parse("NOEQUALS").unwrap_err().contains("line 1"));
        assert!(
            parse("B2_ACCOUNT_ID=1\nB2_ACCOUNT_ID=2")
                .unwrap_err()
                .contains("twice")
        );
        assert_eq!(parse("").unwrap(), vec![]);
    }
}
