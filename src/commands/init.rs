//! `restic-fleet init`: enrol this machine.

use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use crate::local::config::{self, Config};

#[derive(Debug, Serialize)]
pub struct InitReport {
    pub config_path: String,
    pub device_id: String,
    pub device_name: String,
    pub platform: String,
    pub hostname: String,
    pub created: bool,
}

/// Registers (or updates) this device. `name` is only changed when given.
pub async fn register_device(
    pool: &PgPool,
    device_id: &str,
    name: Option<&str>,
) -> anyhow::Result<(String, bool)> {
    let hostname = crate::platform::host::hostname();
    let metadata = json!({
        "client_version": crate::platform::host::VERSION,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    });
    let (name, created): (String, bool) = sqlx::query_as(
        "INSERT INTO devices (id, name, platform, hostname, metadata) \
         VALUES ($1, COALESCE($2, $4), $3, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET \
           name = COALESCE($2, devices.name), platform = EXCLUDED.platform, \
           hostname = EXCLUDED.hostname, \
           metadata = COALESCE(devices.metadata, '{}'::jsonb) || EXCLUDED.metadata, \
           updated_at = NOW() \
         RETURNING name, (xmax = 0) AS created",
    )
    .bind(device_id)
    .bind(name)
    .bind(crate::platform::host::platform())
    .bind(&hostname)
    .bind(metadata)
    .fetch_one(pool)
    .await?;
    Ok((name, created))
}

/// A device role may register only its own device (row-level security, migration 006).
fn not_this_device(err: anyhow::Error, device_id: &str) -> anyhow::Error {
    let denied = err.chain().any(|c| {
        matches!(c.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42501"))
    });
    if denied {
        crate::usage_err!(
            "the database role in this URL may not register device {device_id:?}: a device's \
             role registers only its own device; use the line `restic-fleet device enroll \
             {}` printed for this device",
            crate::domain::quote::posix(device_id)
        )
    } else {
        err
    }
}

pub async fn init(
    config_path: &std::path::Path,
    args: &crate::cli::InitArgs,
) -> anyhow::Result<InitReport> {
    let device_id = args
        .device_id
        .clone()
        .unwrap_or_else(config::default_device_id);
    config::validate_device_id(&device_id)?;
    // Connect (and migrate) first: a config is only written for a database that works.
    let pool = crate::store::db::connect(&args.database_url).await?;
    let (name, created) = register_device(&pool, &device_id, args.name.as_deref())
        .await
        .map_err(|e| not_this_device(e, &device_id))?;
    let cfg = Config {
        database_url: args.database_url.clone(),
        device_id: device_id.clone(),
        // Keep a state_dir the existing file names.
        state_dir: config::load(config_path).ok().and_then(|c| c.state_dir),
    };
    config::write(config_path, &cfg)?;
    Ok(InitReport {
        config_path: config_path.display().to_string(),
        device_id,
        device_name: name,
        platform: crate::platform::host::platform().to_string(),
        hostname: crate::platform::host::hostname(),
        created,
    })
}
