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

/// A device as printed by `device list --json` (an array of these) and `device show --json`.
/// Fields: `id`, `name`, `description`, `platform` (`linux`/`windows`), `hostname`,
/// `enabled`, `last_seen` (RFC 3339 or null), `created_at`, `updated_at`, `metadata` (the
/// client's version and OS as last reported), `job_count`; `show` adds `jobs`.
#[derive(Debug, serde::Serialize, sqlx::FromRow)]
pub struct DeviceOut {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub platform: String,
    pub hostname: Option<String>,
    pub enabled: bool,
    pub last_seen: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub metadata: Option<serde_json::Value>,
    /// The restic-fleet version the device last reported (`metadata.client_version`).
    pub client_version: Option<String>,
    /// `restic version` as the device last reported it (`metadata.restic_version`).
    pub restic_version: Option<String>,
    pub job_count: i64,
}

/// The columns of [`DeviceOut`], with the device's job count.
const DEVICE_SELECT: &str = "SELECT d.id, d.name, d.description, d.platform, d.hostname, d.enabled, \
     d.last_seen, d.created_at, d.updated_at, d.metadata, \
     d.metadata ->> 'client_version' AS client_version, \
     d.metadata ->> 'restic_version' AS restic_version, \
     (SELECT count(*) FROM backup_jobs j WHERE j.device_id = d.id) AS job_count FROM devices d";

/// One device with its job count.
pub async fn find(pool: &sqlx::PgPool, id: &str) -> anyhow::Result<Option<DeviceOut>> {
    Ok(
        sqlx::query_as::<_, DeviceOut>(&format!("{DEVICE_SELECT} WHERE d.id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

/// Every device with its job count, by id.
pub async fn list(pool: &sqlx::PgPool) -> anyhow::Result<Vec<DeviceOut>> {
    Ok(sqlx::query_as(&format!("{DEVICE_SELECT} ORDER BY d.id"))
        .fetch_all(pool)
        .await?)
}

/// A device as `device add` registers it.
#[derive(Debug)]
pub struct NewDevice<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub platform: &'a str,
    pub hostname: Option<&'a str>,
    pub enabled: bool,
}

/// Registers the device; a taken id is a unique violation (23505) for the caller to explain.
pub async fn insert(pool: &sqlx::PgPool, d: NewDevice<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO devices (id, name, description, platform, hostname, enabled) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(d.id)
    .bind(d.name)
    .bind(d.description)
    .bind(d.platform)
    .bind(d.hostname)
    .bind(d.enabled)
    .execute(pool)
    .await?;
    Ok(())
}

/// Registers a device with its id, name and platform only (`device enroll` of a new device).
pub async fn insert_named(
    conn: &mut sqlx::PgConnection,
    id: &str,
    name: &str,
    platform: &str,
) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO devices (id, name, platform) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(name)
        .bind(platform)
        .execute(conn)
        .await?;
    Ok(())
}

/// Registers this machine's device or updates it (`init`): `name` only changes when given
/// (a new device is named after its host), the metadata is merged. Returns the name in force
/// and whether the row is new.
pub async fn register(
    pool: &sqlx::PgPool,
    id: &str,
    name: Option<&str>,
    platform: &str,
    hostname: &str,
    metadata: serde_json::Value,
) -> anyhow::Result<(String, bool)> {
    Ok(sqlx::query_as(
        "INSERT INTO devices (id, name, platform, hostname, metadata) \
         VALUES ($1, COALESCE($2, $4), $3, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET \
           name = COALESCE($2, devices.name), platform = EXCLUDED.platform, \
           hostname = EXCLUDED.hostname, \
           metadata = COALESCE(devices.metadata, '{}'::jsonb) || EXCLUDED.metadata, \
           updated_at = NOW() \
         RETURNING name, (xmax = 0) AS created",
    )
    .bind(id)
    .bind(name)
    .bind(platform)
    .bind(hostname)
    .bind(metadata)
    .fetch_one(pool)
    .await?)
}

/// The platform of a registered device (`linux` or `windows`).
pub async fn platform(db: impl PgExecutor<'_>, id: &str) -> anyhow::Result<String> {
    Ok(
        sqlx::query_scalar("SELECT platform FROM devices WHERE id = $1")
            .bind(id)
            .fetch_one(db)
            .await?,
    )
}

/// Enables or disables the device; returns the rows changed (0: no such device).
pub async fn set_enabled(pool: &sqlx::PgPool, id: &str, enabled: bool) -> anyhow::Result<u64> {
    Ok(
        sqlx::query("UPDATE devices SET enabled = $2, updated_at = NOW() WHERE id = $1")
            .bind(id)
            .bind(enabled)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// Deletes the device (its jobs, schedules, runs and settings go with it by the foreign
/// keys), inside the caller's transaction.
pub async fn delete(conn: &mut sqlx::PgConnection, id: &str) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM devices WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Every device's `(id, name)`, for naming the hosts of snapshots.
pub async fn names(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT id, name FROM devices")
        .fetch_all(db)
        .await
}
