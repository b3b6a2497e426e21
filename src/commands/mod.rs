//! Fleet management from the command line: devices, jobs, schedules, settings, runs, the
//! fleet's status, run-history cleanup, database roles, shell completions and the man page.
//!
//! Every command validates its input completely before it writes anything, so a rejected
//! command leaves the database as it was (exit code 2, one sentence naming the problem).
//! Every read command has `--json`; the field names are documented on the `Serialize` structs
//! of each submodule and are a stable interface.

pub mod cleanup;
pub mod completions;
pub mod db;
pub mod device;
pub mod init;
pub mod job;
pub mod job_monitor;
pub mod maintain;
pub mod man;
pub mod metrics;
pub mod relica_migrate;
pub mod report;
pub mod repositories;
pub mod repositories_move;
pub mod restore;
pub mod run;
pub mod runs;
pub mod schedule;
pub mod schedule_preview;
pub mod settings;
pub mod snapshots;
pub mod spool;
pub mod status;
pub mod sync;

use std::io::IsTerminal;
use std::path::Path;

use crate::local::config::{self as config_file, Config};

use clap::Args;
use sqlx::PgPool;

use crate::domain::exit::Failure;
use crate::platform::repository::Repository;
use crate::usage_err;

/// Options shared by the fleet-management commands.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// Database URL (default: the DATABASE_URL variable, else database_url from the config
    /// file).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Print JSON instead of a table or a sentence.
    #[arg(long)]
    pub json: bool,
}

/// `--interval` of `schedule add` and `schedule preview`.
#[derive(Debug, Clone, Args)]
pub struct IntervalArg {
    /// Every DURATION, counted from the previous run: seconds (3600) or a number with a unit
    /// s, m, h, d or w (30m, 1h, 2d).
    #[arg(
        long,
        value_name = "DURATION",
        allow_negative_numbers = true,
        value_parser = crate::domain::schedule::parse_interval
    )]
    pub interval: Option<i64>,
}

/// The database URL in force: `--database-url`, then `DATABASE_URL`, then the config file.
/// An admin machine needs no enrolled device: a URL alone is enough.
pub fn database_url(config_path: &Path, flag: Option<&str>) -> anyhow::Result<String> {
    if let Some(u) = flag.filter(|u| !u.trim().is_empty()) {
        return Ok(u.to_string());
    }
    if let Ok(u) = std::env::var(crate::local::config::ENV_DATABASE_URL)
        && !u.trim().is_empty()
    {
        return Ok(u);
    }
    match crate::local::config::load_file(config_path) {
        Ok(cfg) => Ok(cfg.database_url),
        Err(e) => Err(usage_err!(
            "no database to manage: {e}; or pass --database-url URL (or set DATABASE_URL)"
        )),
    }
}

/// A value given as `-` (a secret, kept out of the process list and shell history): the whole
/// of standard input, one trailing newline removed.
pub fn read_stdin_value() -> anyhow::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| usage_err!("cannot read the value from standard input: {e}"))?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(s)
}

/// The job a management command names (UUID, `DEVICE/NAME`, or a name on this machine's
/// device when it is enrolled); see [`crate::store::jobs::resolve`].
pub async fn resolve_job(
    config_path: &Path,
    pool: &PgPool,
    text: &str,
) -> anyhow::Result<crate::domain::job::Job> {
    let local = crate::local::config::load_file(config_path)
        .ok()
        .and_then(|c| c.device_id);
    let mut conn = pool.acquire().await?;
    crate::store::jobs::resolve(&mut conn, text, local.as_deref()).await
}

/// Connects for a management command (applying missing migrations when the role may).
pub async fn connect(config_path: &Path, conn: &Conn) -> anyhow::Result<PgPool> {
    let url = database_url(config_path, conn.database_url.as_deref())?;
    crate::store::db::connect(&url).await
}

/// Turns database errors a user can cause into one clear sentence: a missing privilege names
/// the role to use instead.
pub fn explain(result: anyhow::Result<u8>) -> anyhow::Result<u8> {
    let err = match result {
        Ok(c) => return Ok(c),
        Err(e) => e,
    };
    let db = err
        .chain()
        .find_map(|c| match c.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => Some(db),
            _ => None,
        });
    if let Some(db) = db
        && db.code().as_deref() == Some("42501")
    {
        return Err(Failure::failed(format!(
            "permission denied: {}; the database role in use may not do this (a device's role \
             may only record its own runs and heartbeat, backup_viewer may only read); connect \
             as backup_admin with --database-url or DATABASE_URL",
            db.message()
        ))
        .into());
    }
    Err(err)
}

/// Asks before a destructive change. `-y` answers yes; without a terminal and without `-y`
/// the command refuses (exit code 2) so that scripts never delete by accident.
pub fn confirm(what: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(usage_err!(
            "refusing to {what} without confirmation because standard input is not a terminal; \
             pass -y to confirm"
        ));
    }
    eprint!("{what}? [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Failure::failed("cancelled; nothing was changed").into()),
    }
}

/// Checks that a device exists; the error names it and the command that lists devices.
pub async fn require_device(pool: &PgPool, id: &str) -> anyhow::Result<()> {
    if !crate::store::devices::exists(pool, id).await? {
        return Err(usage_err!(
            "no device with id {id:?} exists; list devices with `restic-fleet device list` or enrol \
             one with `restic-fleet device enroll {} --platform linux`",
            crate::domain::quote::posix(id)
        ));
    }
    Ok(())
}

/// Loads this machine's device config at `config_path` (with env overrides; an admin config is
/// refused) and connects, migrating if needed.
pub async fn open(config_path: &Path) -> anyhow::Result<(Config, PgPool)> {
    let cfg = config_file::load(config_path)?;
    let pool = crate::store::db::connect(&cfg.database_url).await?;
    Ok((cfg, pool))
}

/// The repository of `job` as its device reaches it: that device's settings in force (its own
/// `repository_url`, password and `repository_environment` over the global ones) and the URL
/// their `repository_url` template gives for the job, exactly as the job's runs use them.
pub(crate) async fn job_repository(
    pool: &PgPool,
    job: &crate::domain::job::Job,
) -> anyhow::Result<Repository> {
    let settings = crate::store::settings::load(pool, &job.device_id).await?;
    Repository::for_job(&settings, &job.place())
}

/// Every repository the snapshots of `device` may be in: each of its jobs' (the
/// `repository_url` template expanded per job), and the setting itself when it has no
/// placeholder (snapshots of jobs gone since, or imported). Without a device, every device's
/// and the global setting's. A repository several devices share is reached with the settings
/// of the first (this machine's device first, when it has a config).
pub(crate) async fn repositories(
    config_path: &Path,
    pool: &PgPool,
    device: Option<&str>,
) -> anyhow::Result<Vec<Repository>> {
    let local = crate::local::config::load_file(config_path)
        .ok()
        .and_then(|c| c.device_id);
    let devices: Vec<String> = match device {
        Some(d) => vec![d.to_string()],
        None => {
            let mut all: Vec<String> = crate::store::devices::names(pool)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            // This machine's device first: a repository it shares is reached as it reaches it.
            all.sort_by_key(|d| (Some(d) != local.as_ref(), d.clone()));
            all.push(String::new()); // the global settings
            all
        }
    };
    let mut found: std::collections::BTreeMap<String, crate::domain::settings::Settings> =
        Default::default();
    let mut first_error = None;
    for d in &devices {
        let settings = crate::store::settings::load(pool, d).await?;
        let Some(template) = settings.get("repository_url") else {
            continue;
        };
        if crate::domain::repository::placeholders(template).is_empty()
            && crate::domain::repository::validate_template(template).is_ok()
        {
            found
                .entry(template.to_string())
                .or_insert_with(|| settings.clone());
        }
        if d.is_empty() {
            continue;
        }
        let places = crate::store::jobs::places_of_device(pool, d).await?;
        let (groups, errors) = crate::domain::repository::by_repository(
            |_| &settings,
            places.iter().map(crate::store::jobs::PlaceRow::place),
        );
        for e in errors {
            tracing::warn!("{e}");
            first_error.get_or_insert(e);
        }
        for url in groups.into_keys() {
            found.entry(url).or_insert_with(|| settings.clone());
        }
    }
    if found.is_empty() {
        // The usual sentence for an empty setting, else why no job's URL could be made.
        let settings = crate::store::settings::load(pool, devices.last().map_or("", |d| d)).await?;
        Repository::from_settings(&settings)?;
        return Err(usage_err!(
            "{}",
            first_error.unwrap_or_else(|| format!(
                "no repository holds snapshots of {}: repository_url has placeholders and no \
                 job fills them in; add a job with `restic-fleet job add`",
                device.map_or("the fleet".to_string(), |d| format!("device {d:?}"))
            ))
        ));
    }
    found
        .into_iter()
        .map(|(url, settings)| Repository::new(url, &settings))
        .collect()
}

/// Writes `text` to `path` so that a reader sees the old file or the new one, never half of
/// one: a temp file in the same directory, flushed to disk, renamed over `path`. The file is
/// world-readable (0644): node_exporter or a web server usually runs as another user. `what`
/// names the file and `flag` the option that gave the path, for the error.
pub fn write_public_file(path: &Path, what: &str, flag: &str, text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".restic-fleet-{what}"))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| {
            usage_err!(
                "cannot write the {what} next to {}: {e}; give {flag} a file in an existing, \
                 writable directory",
                path.display()
            )
        })?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing the {what} to {}", tmp.path().display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("setting the mode of {}", tmp.path().display()))?;
    }
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming the {what} file to {}", path.display()))?;
    Ok(())
}
