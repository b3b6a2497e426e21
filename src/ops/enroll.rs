//! Per-device credentials: `device enroll` creates or rotates the PostgreSQL login role of one
//! device (here), `device rm` drops it (through [`crate::store::roles::drop_device_role`]).
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

use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::domain::exit::Failure;
use crate::store::roles::CLIENT;
use crate::usage_err;

/// What `device enroll` asks for.
#[derive(Debug)]
pub struct Request<'a> {
    /// The device id; the device is registered first when it does not exist.
    pub id: &'a str,
    /// Human-readable name for a device registered now (default: the id).
    pub name: Option<&'a str>,
    /// Operating system (`linux`/`windows`) for a device registered now; without it an unknown
    /// device is refused.
    pub platform: Option<&'a str>,
    /// The database URL as the device reaches it; its user and password are replaced by the
    /// device's.
    pub public_url: &'a str,
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

/// Creates or rotates the device's login role, registering the device first when needed, in
/// one transaction. Returns the enrolment and the device's platform (the printed `init` line is
/// quoted for its shell).
pub async fn enroll(pool: &PgPool, req: &Request<'_>) -> anyhow::Result<(Enrolment, String)> {
    let database = check_may_enrol(pool).await?;
    let password = new_password();
    let mut tx = pool.begin().await?;
    let device_created = ensure_device(&mut tx, req).await?;
    let (role, exists) = claim_role(&mut tx, &database, req.id).await?;
    let secret = crate::domain::scram::password_for_server(&password)?;
    crate::store::roles::set_device_login(&mut tx, &role, &secret, exists).await?;
    crate::store::roles::record_device_role(&mut tx, req.id, &role).await?;
    let platform = crate::store::devices::platform(&mut *tx, req.id).await?;
    tx.commit().await?;
    let report = Enrolment {
        device_id: req.id.to_string(),
        role: role.clone(),
        database_url: with_credentials(req.public_url, &role, &password)?,
        rotated: exists,
        device_created,
    };
    Ok((report, platform))
}

/// Refuses to go on unless the group `backup_client` exists and this role may create roles;
/// returns the database's name (part of every device role's name).
async fn check_may_enrol(pool: &PgPool) -> anyhow::Result<String> {
    let (may_create, database, group) = crate::store::roles::may_enrol(pool).await?;
    if !group {
        return Err(usage_err!(
            "the group role {} does not exist yet; create the roles first with `restic-fleet db \
             roles` (connected as a superuser)",
            CLIENT
        ));
    }
    if !may_create {
        return Err(Failure::failed(
            "this database role may not create roles; enrol devices connected as backup_admin \
             (after `restic-fleet db roles`, which gives it CREATEROLE) or as a superuser",
        )
        .into());
    }
    Ok(database)
}

/// Registers the device when it does not exist; returns whether it did so.
async fn ensure_device(conn: &mut PgConnection, req: &Request<'_>) -> anyhow::Result<bool> {
    if crate::store::devices::exists(&mut *conn, req.id).await? {
        return Ok(false);
    }
    let Some(platform) = req.platform else {
        return Err(usage_err!(
            "no device with id {:?} exists; register it while enrolling with `--platform \
             linux|windows` (and --name NAME), or first with `restic-fleet device add`",
            req.id
        ));
    };
    let name = req.name.unwrap_or(req.id).trim().to_string();
    crate::store::devices::insert_named(conn, req.id, &name, platform).await?;
    Ok(true)
}

/// The device's role: the one recorded for it, else a new name for this database and device.
/// Returns it with whether it exists already; a role of that name that is not a device role
/// is refused rather than taken over.
async fn claim_role(
    conn: &mut PgConnection,
    database: &str,
    device_id: &str,
) -> anyhow::Result<(String, bool)> {
    let existing = crate::store::roles::device_role(&mut *conn, device_id).await?;
    let role = existing
        .clone()
        .unwrap_or_else(|| role_name(database, device_id));
    let (exists, member) = crate::store::roles::role_state(conn, &role).await?;
    if exists && existing.is_none() && !member {
        return Err(usage_err!(
            "a database role named {role} already exists and is not a device role; drop or rename \
             it, then enrol again"
        ));
    }
    Ok((role, exists))
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
