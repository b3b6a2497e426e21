//! The local configuration file: where it lives, what it holds, how it is written.
//!
//! Resolution order for the file: `--config PATH`, then `RESTIC_FLEET_CONFIG`, then the default
//! location ([`default_path`]). Single values are then overridden by `DATABASE_URL` and
//! `RESTIC_FLEET_DEVICE_ID`; the state directory by `RESTIC_FLEET_STATE_DIR` (see
//! [`crate::local::state`]).
//!
//! A device's config names its `device_id`; an admin machine's config may hold `database_url`
//! alone ([`load_file`]), which every management command accepts and the commands that act as
//! a device ([`load`]: `run`, `sync`, `spool`, `maintain`) refuse with one sentence.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::usage_err;

pub const ENV_CONFIG: &str = "RESTIC_FLEET_CONFIG";
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";
pub const ENV_DEVICE_ID: &str = "RESTIC_FLEET_DEVICE_ID";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// PostgreSQL connection URL with the device's own login, e.g.
    /// `postgres://fleet_3f9a0c21d7e4b5a6c8d90e1f:pw@db.example.com/backup_control`.
    pub database_url: String,
    /// This machine's id in the `devices` table.
    pub device_id: String,
    /// The state directory (local copy, spool, lock files); see [`crate::local::state`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
}

/// What a config file holds: an admin machine's has no `device_id`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub database_url: String,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
}

/// The default config file location for this platform and user.
///
/// - Windows: `%ProgramData%\restic-fleet\config.toml`
/// - Unix as root: `/etc/restic-fleet/config.toml`
/// - Unix otherwise: `$XDG_CONFIG_HOME/restic-fleet/config.toml` (`~/.config/...` when unset)
pub fn default_path() -> PathBuf {
    #[cfg(windows)]
    {
        let base = std::env::var_os("ProgramData")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"));
        base.join("restic-fleet").join("config.toml")
    }
    #[cfg(unix)]
    {
        if nix::unistd::geteuid().is_root() {
            return PathBuf::from("/etc/restic-fleet/config.toml");
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from(".config"));
        base.join("restic-fleet").join("config.toml")
    }
}

/// The config path in force: the `--config` flag, else `RESTIC_FLEET_CONFIG`, else the default.
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(ENV_CONFIG) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => default_path(),
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Loads the config of this machine's device at `path` (see [`load_file`]); an admin config,
/// which names no device, is refused with the way to enrol this machine.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let file = load_file(path)?;
    let Some(device_id) = file.device_id else {
        let what = if path.exists() {
            format!(
                "the config file {} names no device_id (it is an admin config)",
                path.display()
            )
        } else {
            format!(
                "no config file at {} (DATABASE_URL alone names no device)",
                path.display()
            )
        };
        return Err(usage_err!(
            "{what}, so this machine has no device to back up or sync; enrol one with \
             `restic-fleet device enroll ID` on an admin machine and run the printed `init` line \
             here (with --config PATH to keep an admin config in its own file)"
        ));
    };
    validate_device_id(&device_id)?;
    Ok(Config {
        database_url: file.database_url,
        device_id,
        state_dir: file.state_dir,
    })
}

/// Loads the config at `path`, a device's or an admin machine's (`database_url` only), and
/// applies the environment overrides. Without a file, `DATABASE_URL` (with
/// `RESTIC_FLEET_DEVICE_ID` for a device) suffices.
pub fn load_file(path: &Path) -> anyhow::Result<ConfigFile> {
    let env_url = env_nonempty(ENV_DATABASE_URL);
    let env_device = env_nonempty(ENV_DEVICE_ID);
    let text = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(usage_err!(
                "cannot read the config file {}: {e}; check its permissions or pass --config PATH",
                path.display()
            ));
        }
    };
    let mut config = match (text, &env_url) {
        (Some(text), _) => toml::from_str::<ConfigFile>(&text).map_err(|e| {
            usage_err!(
                "the config file {} is not valid: {}; fix it or rewrite it with `restic-fleet init`",
                path.display(),
                e.message()
            )
        })?,
        (None, Some(u)) => ConfigFile {
            database_url: u.clone(),
            device_id: None,
            state_dir: None,
        },
        (None, None) => {
            return Err(usage_err!(
                "no config file at {}; enrol this machine with `restic-fleet init --database-url URL` \
                 or pass --config PATH",
                path.display()
            ));
        }
    };
    if let Some(u) = env_url {
        config.database_url = u;
    }
    if let Some(d) = env_device {
        config.device_id = Some(d);
    }
    if let Some(d) = &config.device_id {
        validate_device_id(d)?;
    }
    Ok(config)
}

/// Device ids become part of restic tags, unit names and file names: keep them to one line of
/// printable text without surrounding spaces.
pub fn validate_device_id(id: &str) -> anyhow::Result<()> {
    if id.is_empty() || id.len() > 255 {
        return Err(usage_err!(
            "device id {id:?} must be 1 to 255 characters long; choose another with --device-id"
        ));
    }
    if id.trim() != id || id.chars().any(|c| c.is_control()) {
        return Err(usage_err!(
            "device id {id:?} must not contain control characters or leading/trailing spaces; \
             choose another with --device-id"
        ));
    }
    Ok(())
}

/// Writes the config file atomically, private (mode 0600; SYSTEM and Administrators only on
/// Windows), since it holds a database password.
pub fn write(path: &Path, config: &Config) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the config directory {}", dir.display()))?;
    let body = format!(
        "# restic-fleet local configuration, written by `restic-fleet init`.\n{}",
        toml::to_string(config).context("cannot serialise the config")?
    );
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    // Private before the password is in it; the rename keeps the access list.
    crate::platform::acl::restrict(tmp.path(), crate::domain::private_acl::Object::File)
        .with_context(|| {
            format!(
                "cannot make the config file {} private; run init as root (as an \
                 Administrator on Windows)",
                path.display()
            )
        })?;
    std::io::Write::write_all(&mut tmp, body.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot write the config file {}: {}", path.display(), e))?;
    Ok(())
}

/// The default device id: this machine's host name up to the first dot, lowercased.
pub fn default_device_id() -> String {
    let host = crate::platform::host::hostname();
    let short = host.split('.').next().unwrap_or("").trim().to_lowercase();
    if short.is_empty() {
        "localhost".to_string()
    } else {
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_load_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        let cfg = Config {
            database_url: "postgres://u:p@h/db".into(),
            device_id: "laptop".into(),
            state_dir: Some("/var/tmp/rf".into()),
        };
        write(&path, &cfg).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn device_id_rules() {
        assert!(validate_device_id("laptop-1").is_ok());
        assert!(validate_device_id("ÚČTO pc").is_ok());
        assert!(validate_device_id("").is_err());
        assert!(validate_device_id(" x").is_err());
        assert!(validate_device_id("a\nb").is_err());
    }
}
