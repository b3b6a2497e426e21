//! What most commands start with: the local config and a database connection.

use std::path::Path;

use sqlx::PgPool;

use crate::config::{self, Config};

/// Loads the config at `config_path` (with env overrides) and connects, migrating if needed.
pub async fn open(config_path: &Path) -> anyhow::Result<(Config, PgPool)> {
    let cfg = config::load(config_path)?;
    let pool = crate::db::connect(&cfg.database_url).await?;
    Ok((cfg, pool))
}
