//! What `status --notify` remembers between runs: the last verdict notified per job and device.
//!
//! `notification_state` holds, per target and subject (`job:<uuid>`, `device:<id>`), the last
//! state that target accepted. `status --notify` reads and writes it inside one transaction on
//! a connection of its own, after [`lock`]: the statements take a `&mut PgConnection` (the
//! transaction), never the pool.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};

/// A connection of its own (not from the pool) to hold the lock on, with the pool's options:
/// the pool has one connection, which the status read needs meanwhile.
pub async fn lock_connection(pool: &PgPool) -> anyhow::Result<PgConnection> {
    Ok(sqlx::ConnectOptions::connect(&*pool.connect_options()).await?)
}

/// Takes the lock that serialises `--notify` calls: it conflicts with itself and ends with the
/// transaction (no session state, so it works through PgBouncer's transaction pooling).
pub async fn lock(tx: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query("LOCK TABLE notification_state IN SHARE ROW EXCLUSIVE MODE")
        .execute(tx)
        .await?;
    Ok(())
}

/// What every target last accepted: `(target, subject) → state`.
pub async fn known(tx: &mut PgConnection) -> anyhow::Result<HashMap<(String, String), String>> {
    let known: Vec<(String, String, String)> =
        sqlx::query_as("SELECT target, subject, state FROM notification_state")
            .fetch_all(tx)
            .await?;
    Ok(known.into_iter().map(|(t, s, st)| ((t, s), st)).collect())
}

/// Forgets every subject but `keys` (jobs and devices that no longer exist).
pub async fn forget_all_but(tx: &mut PgConnection, keys: &[&str]) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM notification_state WHERE subject <> ALL($1)")
        .bind(keys)
        .execute(tx)
        .await?;
    Ok(())
}

/// Records that `target` accepted `state` for `subject`.
pub async fn remember(
    tx: &mut PgConnection,
    target: &str,
    subject: &str,
    state: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO notification_state (target, subject, state, notified_at) \
         VALUES ($1, $2, $3, NOW()) \
         ON CONFLICT (target, subject) DO UPDATE \
         SET state = EXCLUDED.state, notified_at = EXCLUDED.notified_at",
    )
    .bind(target)
    .bind(subject)
    .bind(state)
    .execute(tx)
    .await?;
    Ok(())
}
