//! The `devices` table: registering, listing, enabling and removing devices, the heartbeat
//! of `sync`, and the checks a device makes on its own row.

use sqlx::PgExecutor;

/// The device's `enabled` flag, or `None` when no device has this id.
pub async fn enabled(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar("SELECT enabled FROM devices WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Whether a device with this id is registered.
pub async fn exists(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1)")
        .bind(id)
        .fetch_one(db)
        .await
}

/// Every device's `(id, name)`, for naming the hosts of snapshots.
pub async fn names(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT id, name FROM devices")
        .fetch_all(db)
        .await
}
