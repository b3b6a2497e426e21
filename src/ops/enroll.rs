//! Per-device credentials: `device enroll` creates or rotates the PostgreSQL login role of one
//! device, `device rm` drops it (through [`drop_role`]).
//!
//! A device role is a member of the group `backup_client` (made by `db roles`) and is listed in
//! the table `device_roles`, which `fleet_current_device()` reads, so the row-level security
//! policies of migration 006 hold it to its own rows. The role name is derived from the
//! database and the device id (`fleet_<id>_<hash>`, at most 63 bytes) because roles are
//! cluster-wide while device ids are per database: two fleets in one cluster never share a role.
//!
//! The password is 256 random bits (two v4 UUIDs, hex), shown once in the printed
//! `restic-fleet init` line and never stored by us; PostgreSQL keeps only its SCRAM verifier,
//! which is computed here ([`crate::domain::scram`]): the password itself never reaches the server,
//! so no statement log, error context or `pg_stat_statements` can keep it. Like `db roles`,
//! the verifier never appears in an SQL statement's text either: a transaction-local setting
//! carries it to a server-side block. Rotating sets a new password, so the old one stops
//! working at once (sessions already open stay open until they end).

use std::path::Path;

use clap::Args;
use serde::Serialize;
use sqlx::{Postgres, Transaction};

use crate::commands::Conn;
use crate::commands::db as roles;
use crate::commands::device::Platform;
use crate::domain::exit::{self, Failure};
use crate::output::print_json;
use crate::usage_err;

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// Device id. The device is registered first when it does not exist (then --platform is
    /// needed, as for `device add`).
    #[arg(value_name = "ID")]
    pub id: String,
    /// Human-readable name for a device registered now (default: the id).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Operating system, for a device registered now.
    #[arg(long, value_enum)]
    pub platform: Option<Platform>,
    /// The database URL as the device reaches it (default: the URL this command connects
    /// with); its user and password are replaced by the device's.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
}

/// `device enroll --json`: `device_id`, `role` (the PostgreSQL role), `database_url` (with the
/// new password: shown only this once), `rotated` (true when the role existed and only its
/// password changed), `device_created` (true when the device row was registered now).
#[derive(Debug, Serialize)]
pub struct Enrolment {
    pub device_id: String,
    pub role: String,
    pub database_url: String,
    pub rotated: bool,
    pub device_created: bool,
}

/// The role name for `device_id` in database `database`: `fleet_`, the id's letters and digits
/// (lower-case, at most 32), `_`, and 12 hex digits of a hash of database and id.
pub fn role_name(database: &str, device_id: &str) -> String {
    let mut readable: String = device_id
        .chars()
        .filter_map(|c| {
            let c = c.to_ascii_lowercase();
            (c.is_ascii_lowercase() || c.is_ascii_digit()).then_some(c)
        })
        .take(32)
        .collect();
    if readable.is_empty() {
        readable.push_str("device");
    }
    // FNV-1a, 64 bit: names only need to be distinct, not secret.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in database.bytes().chain([0u8]).chain(device_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("fleet_{readable}_{:012x}", h >> 16)
}

/// A new random password: 64 hex digits.
fn new_password() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// `url` with its user and password replaced (and libpq's `user=`/`password=` parameters
/// removed, since they would override the ones in the authority).
pub fn with_credentials(url: &str, user: &str, password: &str) -> anyhow::Result<String> {
    let bad = || {
        usage_err!(
            "the database URL must look like postgres://HOST:PORT/DATABASE to derive the device's \
             URL from it; give the URL the device uses with --public-url"
        )
    };
    let scheme_end = url.find("://").ok_or_else(bad)?;
    let scheme = &url[..scheme_end];
    if scheme != "postgres" && scheme != "postgresql" {
        return Err(bad());
    }
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    if host.is_empty() {
        return Err(bad());
    }
    let tail = &rest[authority_end..];
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let mut out = format!("{scheme}://{user}:{password}@{host}{path}");
    if let Some(q) = query {
        let kept: Vec<&str> = q
            .split('&')
            .filter(|p| {
                let k = p.split('=').next().unwrap_or("").to_ascii_lowercase();
                k != "user" && k != "password" && !p.is_empty()
            })
            .collect();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
    }
    Ok(out)
}

pub async fn enroll(config_path: &Path, a: EnrollArgs) -> anyhow::Result<u8> {
    crate::local::config::validate_device_id(&a.id)?;
    if let Some(n) = &a.name {
        crate::commands::device::validate_device_name(n)?;
    }
    let url = crate::commands::database_url(config_path, a.conn.database_url.as_deref())?;
    let public = a.public_url.clone().unwrap_or_else(|| url.clone());
    // Checked before anything is written: the device URL can be derived.
    with_credentials(&public, "x", "x")?;
    let pool = crate::store::db::connect(&url).await?;
    let (may_create, database, group): (bool, String, bool) = sqlx::query_as(
        "SELECT rolsuper OR rolcreaterole, current_database()::text, \
           EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) \
         FROM pg_roles WHERE rolname = current_user",
    )
    .bind(roles::CLIENT)
    .fetch_one(&pool)
    .await?;
    if !group {
        return Err(usage_err!(
            "the group role {} does not exist yet; create the roles first with `restic-fleet db \
             roles` (connected as a superuser)",
            roles::CLIENT
        ));
    }
    if !may_create {
        return Err(Failure::failed(
            "this database role may not create roles; enrol devices connected as backup_admin \
             (after `restic-fleet db roles`, which gives it CREATEROLE) or as a superuser",
        )
        .into());
    }
    let password = new_password();
    let mut tx = pool.begin().await?;
    let device_created = ensure_device(&mut tx, &a).await?;
    let existing: Option<String> =
        sqlx::query_scalar("SELECT role_name FROM device_roles WHERE device_id = $1")
            .bind(&a.id)
            .fetch_optional(&mut *tx)
            .await?;
    let role = existing
        .clone()
        .unwrap_or_else(|| role_name(&database, &a.id));
    let (exists, member): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1), \
           EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member \
                   JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname = $1 AND g.rolname = $2)",
    )
    .bind(&role)
    .bind(roles::CLIENT)
    .fetch_one(&mut *tx)
    .await?;
    if exists && existing.is_none() && !member {
        return Err(usage_err!(
            "a database role named {role} already exists and is not a device role; drop or rename \
             it, then enrol again"
        ));
    }
    let secret = crate::domain::scram::password_for_server(&password)?;
    set_role_password(&mut tx, &role, &secret, exists).await?;
    sqlx::query(
        "INSERT INTO device_roles (device_id, role_name) VALUES ($1, $2) \
         ON CONFLICT (device_id) DO UPDATE SET role_name = EXCLUDED.role_name, rotated_at = NOW()",
    )
    .bind(&a.id)
    .bind(&role)
    .execute(&mut *tx)
    .await?;
    let platform: String = sqlx::query_scalar("SELECT platform FROM devices WHERE id = $1")
        .bind(&a.id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;

    let report = Enrolment {
        device_id: a.id.clone(),
        role: role.clone(),
        database_url: with_credentials(&public, &role, &password)?,
        rotated: exists,
        device_created,
    };
    if a.conn.json {
        print_json(&report)?;
        return Ok(exit::SUCCESS);
    }
    println!(
        "{} device {:?}: database role {role}{}",
        if exists {
            "rotated the password of"
        } else {
            "enrolled"
        },
        a.id,
        if exists {
            " (the old password no longer works)"
        } else {
            ""
        }
    );
    println!("on that machine, run (the password is shown only this once):");
    println!(
        "  restic-fleet init --database-url {} --device-id {}",
        crate::domain::quote::for_platform(&platform, &report.database_url),
        crate::domain::quote::for_platform(&platform, &a.id)
    );
    Ok(exit::SUCCESS)
}

/// Registers the device when it does not exist; returns whether it did so.
async fn ensure_device(tx: &mut Transaction<'_, Postgres>, a: &EnrollArgs) -> anyhow::Result<bool> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM devices WHERE id = $1")
        .bind(&a.id)
        .fetch_optional(&mut **tx)
        .await?;
    if found.is_some() {
        return Ok(false);
    }
    let Some(platform) = a.platform else {
        return Err(usage_err!(
            "no device with id {:?} exists; register it while enrolling with `--platform \
             linux|windows` (and --name NAME), or first with `restic-fleet device add`",
            a.id
        ));
    };
    let name = a.name.as_deref().unwrap_or(&a.id).trim().to_string();
    sqlx::query("INSERT INTO devices (id, name, platform) VALUES ($1, $2, $3)")
        .bind(&a.id)
        .bind(&name)
        .bind(platform.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

/// CREATE ROLE (in the group) or ALTER ROLE ... PASSWORD `secret` (a SCRAM verifier), which
/// only travels as a bound parameter.
async fn set_role_password(
    tx: &mut Transaction<'_, Postgres>,
    role: &str,
    secret: &str,
    exists: bool,
) -> anyhow::Result<()> {
    sqlx::query(
        "SELECT set_config('restic_fleet.role', $1, true), \
                set_config('restic_fleet.password', $2, true), \
                set_config('restic_fleet.group', $3, true)",
    )
    .bind(role)
    .bind(secret)
    .bind(roles::CLIENT)
    .execute(&mut **tx)
    .await?;
    let block = if exists {
        "DO $$ BEGIN \
           EXECUTE format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', \
             current_setting('restic_fleet.role'), current_setting('restic_fleet.password')); \
           EXECUTE format('GRANT %I TO %I', current_setting('restic_fleet.group'), \
             current_setting('restic_fleet.role')); \
         END $$"
    } else {
        "DO $$ BEGIN \
           EXECUTE format('CREATE ROLE %I WITH LOGIN PASSWORD %L IN ROLE %I', \
             current_setting('restic_fleet.role'), current_setting('restic_fleet.password'), \
             current_setting('restic_fleet.group')); \
         END $$"
    };
    sqlx::query(block).execute(&mut **tx).await?;
    sqlx::query("SELECT set_config('restic_fleet.password', '', true)")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Drops the login role of `device_id` (inside the caller's transaction, before its device row
/// goes away); returns the role's name when there was one.
pub async fn drop_role(
    tx: &mut Transaction<'_, Postgres>,
    device_id: &str,
) -> anyhow::Result<Option<String>> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role_name FROM device_roles WHERE device_id = $1")
            .bind(device_id)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some(r) = &role {
        sqlx::query("SELECT set_config('restic_fleet.role', $1, true)")
            .bind(r)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "DO $$ BEGIN \
               IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_setting('restic_fleet.role')) THEN \
                 EXECUTE format('DROP ROLE %I', current_setting('restic_fleet.role')); \
               END IF; \
             END $$",
        )
        .execute(&mut **tx)
        .await?;
    }
    Ok(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_short_distinct_and_safe() {
        let a = role_name("fleet", "laptop-1");
        assert!(a.starts_with("fleet_laptop1_"), "{a}");
        assert_ne!(a, role_name("other", "laptop-1"));
        assert_ne!(a, role_name("fleet", "laptop1"));
        let long = role_name("fleet", &"x".repeat(255));
        assert!(long.len() <= 63, "{long}");
        let odd = role_name("db", "Počítač;id");
        assert!(odd.starts_with("fleet_potaid_") && odd.len() == 25, "{odd}");
        assert!(
            role_name("db", "; DROP")
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }

    #[test]
    fn cli_definitions_are_consistent() {
        use clap::CommandFactory;
        crate::cli::Cli::command().debug_assert();
    }

    #[test]
    fn device_url_replaces_credentials() {
        assert_eq!(
            with_credentials("postgres://postgres@127.0.0.1:5432/fleet", "r", "p").unwrap(),
            "postgres://r:p@127.0.0.1:5432/fleet"
        );
        assert_eq!(
            with_credentials(
                "postgresql://a:b@h/db?sslmode=require&password=x&user=y",
                "r",
                "p"
            )
            .unwrap(),
            "postgresql://r:p@h/db?sslmode=require"
        );
        assert!(with_credentials("host=h dbname=d", "r", "p").is_err());
    }
}
