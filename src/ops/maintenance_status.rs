//! The `maintenance` object of `restic-fleet status` and `metrics`: reads who maintains the
//! repository, the owner's settings and heartbeat, and the `maintenance_runs` history, and has
//! [`crate::domain::health::maintenance`] judge them.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::domain::health::maintenance::{self, MaintenanceFacts, MaintenanceStatus};

/// Reads the settings and `maintenance_runs` and judges.
pub async fn collect(pool: &PgPool, now: DateTime<Utc>) -> anyhow::Result<MaintenanceStatus> {
    let owner = crate::store::maintenance::global_owner(pool).await?;
    // The owner's own settings (time zone, schedule overrides) decide its timer.
    let settings = crate::store::settings::load(pool, owner.as_deref().unwrap_or("")).await?;
    let steps = crate::store::maintenance::step_history(pool).await?;
    let owner_last_seen = match &owner {
        None => None,
        Some(o) => crate::store::maintenance::device_last_seen(pool, o).await?,
    };
    Ok(maintenance::status(
        MaintenanceFacts {
            owner,
            owner_last_seen,
            settings,
            steps,
        },
        now,
    ))
}
