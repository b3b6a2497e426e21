//! The SQL of the `repositories` table: the fleet's repositories known by fingerprint (see
//! [`crate::domain::repository::fingerprint`]), who maintains each, and its snapshot count and
//! size as of its last maintenance; and the devices whose jobs are not in the shared ones.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// One row of `repositories`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RepositoryRow {
    pub id: i32,
    pub fingerprint: String,
    /// `None`: shared, maintained by the `maintenance_device`.
    pub maintainer_device_id: Option<String>,
    pub snapshot_count: Option<i32>,
    pub total_size: Option<i64>,
    pub counted_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, fingerprint, maintainer_device_id, snapshot_count, total_size, counted_at";

/// Registers the repository with this `fingerprint` as maintained by this device (or, when
/// `shared`, by the maintenance owner) and returns its id. The database refuses a device that
/// does not maintain it (see `fleet_register_repository` in migration 015).
pub async fn register(pool: &PgPool, fingerprint: &str, shared: bool) -> anyhow::Result<i32> {
    Ok(
        sqlx::query_scalar("SELECT fleet_register_repository($1, $2)")
            .bind(fingerprint)
            .bind(shared)
            .fetch_one(pool)
            .await?,
    )
}

/// Records a repository's snapshot count and size (bytes, when known) as counted now.
pub async fn record_count(
    pool: &PgPool,
    id: i32,
    snapshots: i32,
    size: Option<i64>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE repositories SET snapshot_count = $2, total_size = COALESCE($3, total_size), \
             counted_at = NOW(), updated_at = NOW() WHERE id = $1",
    )
    .bind(id)
    .bind(snapshots)
    .bind(size)
    .execute(pool)
    .await?;
    Ok(())
}

/// Every repository this session may see (admins and viewers: all of them).
pub async fn all(pool: &PgPool) -> anyhow::Result<Vec<RepositoryRow>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM repositories ORDER BY id"))
            .fetch_all(pool)
            .await?,
    )
}

/// The devices with a `repository_url` of their own (admins, viewers and the maintenance
/// owner see them; anyone else gets none).
pub async fn devices_with_own_repository(pool: &PgPool) -> anyhow::Result<HashSet<String>> {
    let rows: Vec<String> = sqlx::query_scalar("SELECT fleet_devices_with_own_repository()")
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().collect())
}

/// What a job contributes to its repository's URL, with its name for output.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobPlaceRow {
    pub id: uuid::Uuid,
    pub device_id: String,
    pub name: String,
    pub account_id: Option<uuid::Uuid>,
    pub origin_name: Option<String>,
}

/// Every job's repository values, in one statement (grouped by device).
pub async fn job_places(pool: &PgPool) -> anyhow::Result<Vec<JobPlaceRow>> {
    Ok(sqlx::query_as(
        "SELECT id, device_id, name, account_id, origin_name FROM backup_jobs \
         ORDER BY device_id, name, id",
    )
    .fetch_all(pool)
    .await?)
}

/// An admin records a repository it has seen or created, with its maintainer (`None`:
/// shared), and gets its id; an existing row keeps its counts and takes the maintainer given.
pub async fn remember(
    pool: &PgPool,
    fingerprint: &str,
    maintainer: Option<&str>,
) -> anyhow::Result<i32> {
    Ok(sqlx::query_scalar(
        "INSERT INTO repositories (fingerprint, maintainer_device_id) VALUES ($1, $2) \
         ON CONFLICT (fingerprint) DO UPDATE SET maintainer_device_id = EXCLUDED.maintainer_device_id, \
           updated_at = CASE WHEN repositories.maintainer_device_id IS DISTINCT FROM \
             EXCLUDED.maintainer_device_id THEN NOW() ELSE repositories.updated_at END \
         RETURNING id",
    )
    .bind(fingerprint)
    .bind(maintainer)
    .fetch_one(pool)
    .await?)
}
