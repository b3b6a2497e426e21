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

/// The heartbeat of `sync`: the device was seen now, with this host name, and `metadata` is
/// merged into what others stored rather than replacing it. Returns the rows updated: 0 when no
/// device has this id, or when the role in use is not this device's (a device role sees only
/// its own row).
pub async fn heartbeat(
    db: impl PgExecutor<'_>,
    id: &str,
    hostname: &str,
    metadata: serde_json::Value,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE devices SET last_seen = NOW(), hostname = $2, \
           metadata = COALESCE(metadata, '{}'::jsonb) || $3 WHERE id = $1",
    )
    .bind(id)
    .bind(hostname)
    .bind(metadata)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
