//! The `settings` table: global rows and the device's own, read as one map, and the writes of
//! `settings set|unset`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor, PgPool};

use crate::domain::settings::Settings;

/// The keys of secret settings (masked in output, never readable by viewers). The one list
/// lives in the database, `fleet_secret_setting_keys()` of migration 006, because the viewer's
/// row-level security policy needs it too; the client asks for it instead of keeping a copy.
pub async fn secret_keys(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT unnest(fleet_secret_setting_keys())")
            .fetch_all(pool)
            .await?,
    )
}

/// The merged settings for `device_id` with the seed's query: global settings first, then the
/// device's own, later rows winning.
pub async fn load<'e>(db: impl PgExecutor<'e>, device_id: &str) -> anyhow::Result<Settings> {
    let rows: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT key, value, device_id IS NOT NULL FROM settings \
         WHERE device_id IS NULL OR device_id = $1 ORDER BY device_id NULLS FIRST",
    )
    .bind(device_id)
    .fetch_all(db)
    .await?;
    let own: Vec<String> = rows
        .iter()
        .filter(|(_, _, own)| *own)
        .map(|(k, _, _)| k.clone())
        .collect();
    Ok(Settings::from_pairs(rows.into_iter().map(|(k, v, _)| (k, v))).with_own(device_id, own))
}

/// Every settings row at once, for the whole fleet's settings in force without one statement
/// per device: the global pairs and each device's own pairs.
#[derive(Debug, Default)]
pub struct AllSettings {
    pub global: Vec<(String, String)>,
    pub own: std::collections::HashMap<String, Vec<(String, String)>>,
}

impl AllSettings {
    /// The settings in force on `device` (its own rows over the global ones), as [`load`]
    /// would read them.
    pub fn of(&self, device: &str) -> Settings {
        match self.own.get(device) {
            None => Settings::from_pairs(self.global.iter().cloned())
                .with_own(device, std::iter::empty()),
            Some(own) => Settings::from_pairs(self.global.iter().chain(own.iter()).cloned())
                .with_own(device, own.iter().map(|(k, _)| k.clone())),
        }
    }

    /// The global settings alone.
    pub fn global(&self) -> Settings {
        Settings::from_pairs(self.global.iter().cloned())
    }
}

/// Reads every settings row this role may read in one statement (see [`AllSettings`]).
pub async fn all(pool: &PgPool) -> anyhow::Result<AllSettings> {
    let rows: Vec<(Option<String>, String, String)> =
        sqlx::query_as("SELECT device_id, key, value FROM settings ORDER BY device_id NULLS FIRST")
            .fetch_all(pool)
            .await?;
    let mut out = AllSettings::default();
    for (device, key, value) in rows {
        match device {
            None => out.global.push((key, value)),
            Some(d) => out.own.entry(d).or_default().push((key, value)),
        }
    }
    Ok(out)
}

/// The global settings only (no device's own rows).
pub async fn global(pool: &PgPool) -> anyhow::Result<Settings> {
    Ok(Settings::from_pairs(
        sqlx::query_as::<_, (String, String)>(
            "SELECT key, value FROM settings WHERE device_id IS NULL",
        )
        .fetch_all(pool)
        .await?,
    ))
}

/// The setting keys this database knows: every setting has a global default row, inserted by
/// the migration that introduced it, so the database (not a list in the code) says which keys
/// exist. Keys that only have device rows count too, and so do the keys the embedded
/// migrations insert (a global row removed with `settings unset` can be set again).
pub async fn known_keys(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let mut keys: Vec<String> = sqlx::query_scalar("SELECT DISTINCT key FROM settings")
        .fetch_all(pool)
        .await?;
    for m in crate::store::db::MIGRATOR.iter() {
        keys.extend(keys_inserted_by(&m.sql));
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// The keys of the global default rows a migration inserts: `(NULL, 'key', ...` in its
/// `INSERT INTO settings` statements.
fn keys_inserted_by(sql: &str) -> Vec<String> {
    // Statements end at a `;` outside a quoted string ('' is a quote inside one); `--`
    // comments (which may hold an apostrophe) are dropped first.
    let sql: String = sql
        .lines()
        .map(|l| match l.trim_start().starts_with("--") {
            true => "",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut statements = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in sql.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            ';' if !quoted => {
                statements.push(&sql[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    statements.push(&sql[start..]);
    let mut out = Vec::new();
    for stmt in statements {
        if !stmt.to_ascii_uppercase().contains("INSERT INTO SETTINGS") {
            continue;
        }
        let mut rest = stmt;
        while let Some(i) = rest.find("(NULL, '") {
            rest = &rest[i + "(NULL, '".len()..];
            if let Some(end) = rest.find('\'') {
                out.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    out
}

/// A setting as printed by `settings list --json` (an array) and `settings get --json`:
/// `key`, `value` (`***` for a secret unless `--show-secrets`), `scope` (`global` or
/// `device`: where the value comes from), `device_id` (null for global), `description`,
/// `updated_at`.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct SettingOut {
    pub key: String,
    pub value: String,
    pub scope: String,
    pub device_id: Option<String>,
    pub description: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// Whether the key is a secret setting (not printed: `value` says it).
    #[serde(skip)]
    pub secret: bool,
}

/// The global rows by key, or with `device` the rows in force on that device (its own row of
/// a key, else the global one).
pub async fn rows(pool: &PgPool, device: Option<&str>) -> anyhow::Result<Vec<SettingOut>> {
    Ok(match device {
        None => {
            sqlx::query_as(
                "SELECT key, value, 'global' AS scope, device_id, description, updated_at, \
                   key::text = ANY (fleet_secret_setting_keys()) AS secret \
                 FROM settings WHERE device_id IS NULL ORDER BY key",
            )
            .fetch_all(pool)
            .await?
        }
        Some(d) => {
            sqlx::query_as(
                "SELECT DISTINCT ON (key) key, value, \
                   CASE WHEN device_id IS NULL THEN 'global' ELSE 'device' END AS scope, \
                   device_id, description, updated_at, \
                   key::text = ANY (fleet_secret_setting_keys()) AS secret \
                 FROM settings WHERE device_id IS NULL OR device_id = $1 \
                 ORDER BY key, device_id NULLS LAST",
            )
            .bind(d)
            .fetch_all(pool)
            .await?
        }
    })
}

/// The secret keys whose rows row-level security hides from this role: all of them for a
/// viewer (that is not also an admin), none otherwise.
pub async fn hidden_secrets(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT unnest(fleet_secret_setting_keys()) WHERE fleet_is_viewer() AND NOT fleet_is_admin()",
    )
    .fetch_all(pool)
    .await?)
}

/// Whether `key` is a secret setting, and whether this role is a viewer (not also an admin).
pub async fn secret_for_viewer(pool: &PgPool, key: &str) -> anyhow::Result<(bool, bool)> {
    Ok(sqlx::query_as(
        "SELECT $1 = ANY (fleet_secret_setting_keys()), fleet_is_viewer() AND NOT fleet_is_admin()",
    )
    .bind(key)
    .fetch_one(pool)
    .await?)
}

/// Hands PostgreSQL a setting's value as the data of a `COPY ... FROM STDIN` into a temporary
/// table of the open transaction, instead of as a bound parameter: with `log_statement = all`
/// (or `log_min_duration_statement`) the server logs each statement with its bound parameters,
/// but never the rows of a COPY, so a secret (the repository password, a URL's token, backend
/// credentials) stays out of its log. The statement that follows reads it as
/// [`STAGED_VALUE`]. The table is dropped at commit, so it works behind PgBouncer too.
pub(crate) async fn stage_value(conn: &mut PgConnection, value: &str) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TEMPORARY TABLE IF NOT EXISTS fleet_staged_value (value TEXT NOT NULL) \
         ON COMMIT DROP",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM fleet_staged_value")
        .execute(&mut *conn)
        .await?;
    let mut copy = conn
        .copy_in_raw("COPY fleet_staged_value (value) FROM STDIN")
        .await?;
    copy.send(copy_text_row(value).into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// The value [`stage_value`] handed over, as an SQL expression.
pub(crate) const STAGED_VALUE: &str = "(SELECT value FROM fleet_staged_value)";

/// One row of COPY's text format holding `value`: backslash, newline, carriage return and tab
/// escaped, so no value can end the row or the data early.
fn copy_text_row(value: &str) -> String {
    let mut row = String::with_capacity(value.len() + 1);
    for c in value.chars() {
        match c {
            '\\' => row.push_str("\\\\"),
            '\n' => row.push_str("\\n"),
            '\r' => row.push_str("\\r"),
            '\t' => row.push_str("\\t"),
            c => row.push(c),
        }
    }
    row.push('\n');
    row
}

/// Sets a global setting (its description kept unless a new one is given). The value reaches
/// the server through [`stage_value`], never the statement log.
pub async fn set_global(
    pool: &PgPool,
    key: &str,
    value: &str,
    description: Option<&str>,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    stage_value(&mut tx, value).await?;
    sqlx::query(&format!(
        "INSERT INTO settings (device_id, key, value, description) \
         SELECT NULL, $1, {STAGED_VALUE}, $2 \
         ON CONFLICT (key) WHERE device_id IS NULL DO UPDATE SET value = EXCLUDED.value, \
         description = COALESCE(EXCLUDED.description, settings.description), \
         updated_at = NOW()"
    ))
    .bind(key)
    .bind(description)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Sets a device's own value of a setting (its description kept unless a new one is given),
/// the value through [`stage_value`].
pub async fn set_for_device(
    pool: &PgPool,
    device: &str,
    key: &str,
    value: &str,
    description: Option<&str>,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    stage_value(&mut tx, value).await?;
    sqlx::query(&format!(
        "INSERT INTO settings (device_id, key, value, description) \
         SELECT $1, $2, {STAGED_VALUE}, $3 \
         ON CONFLICT (device_id, key) DO UPDATE SET value = EXCLUDED.value, \
         description = COALESCE(EXCLUDED.description, settings.description), \
         updated_at = NOW()"
    ))
    .bind(device)
    .bind(key)
    .bind(description)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Sets several of a device's own settings in one transaction (each value through
/// [`stage_value`]), so a device never has one without the others (a repository URL without
/// the password that opens it).
pub async fn set_many_for_device(
    pool: &PgPool,
    device: &str,
    pairs: &[(&str, &str)],
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    for (key, value) in pairs {
        stage_value(&mut tx, value).await?;
        sqlx::query(&format!(
            "INSERT INTO settings (device_id, key, value) SELECT $1, $2, {STAGED_VALUE} \
             ON CONFLICT (device_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = NOW()"
        ))
        .bind(device)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The id of the row of `key`: the global one, or with `device` that device's own.
pub async fn row_id(pool: &PgPool, key: &str, device: Option<&str>) -> anyhow::Result<Option<i32>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM settings WHERE key = $1 AND device_id IS NOT DISTINCT FROM $2",
    )
    .bind(key)
    .bind(device)
    .fetch_optional(pool)
    .await?)
}

/// Deletes one settings row.
pub async fn delete(pool: &PgPool, id: i32) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM settings WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Every row of one setting: `(device, value)`, the device `None` for the global row.
pub async fn rows_of_key(
    db: impl PgExecutor<'_>,
    key: &str,
) -> anyhow::Result<Vec<(Option<String>, String)>> {
    Ok(
        sqlx::query_as("SELECT device_id, value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_all(db)
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_escape_what_would_end_them() {
        assert_eq!(copy_text_row("pw"), "pw\n");
        assert_eq!(copy_text_row("a\\.\nb\r\tc\\"), "a\\\\.\\nb\\r\\tc\\\\\n");
    }

    #[test]
    fn migrations_name_their_settings() {
        let keys: Vec<String> = crate::store::db::MIGRATOR
            .iter()
            .flat_map(|m| keys_inserted_by(&m.sql))
            .collect();
        for k in [
            "repository_url",
            "repository_password",
            "sync_interval_seconds",
            "timezone",
            "windows_wake_to_run",
            "repository_environment",
            "network_wait_seconds",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} not in {keys:?}");
        }
        assert!(keys.iter().all(|k| !k.contains(' ')), "{keys:?}");
    }
}
