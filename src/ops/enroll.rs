//! Per-device credentials: `device enroll` creates or rotates the PostgreSQL login role of one
//! device (here), `device rm` drops it (through [`crate::store::roles::drop_device_role`]).
//!
//! A device role is a member of the group `backup_client` (made by `db roles`) and is listed in
//! the table `device_roles`, which `fleet_current_device()` reads, so the row-level security
//! policies of migration 006 hold it to its own rows. The role name is random (`fleet_` and 24
//! hex digits): every role of the cluster can read role names, so they must not name devices,
//! and roles are cluster-wide while device ids are per database.
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

/// A new role name: `fleet_` and 24 random hex digits (96 bits). Role names are visible to
/// every role of the cluster (`pg_roles`, `pg_stat_activity`), so they carry nothing of the
/// device: a device cannot list the fleet from them, and two fleets in one cluster never meet.
pub fn new_role_name() -> anyhow::Result<String> {
    let mut bytes = [0u8; 12];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no random numbers from the system: {e}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("fleet_{hex}"))
}

/// Whether `role` is a name [`new_role_name`] makes. Older device roles were named after the
/// device (`fleet_<id letters>_<hash>`); rotating such a role renames it.
pub fn is_opaque_role_name(role: &str) -> bool {
    role.strip_prefix("fleet_").is_some_and(|hex| {
        hex.len() == 24
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
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
    check_may_enrol(pool).await?;
    let password = new_password();
    let mut tx = pool.begin().await?;
    let device_created = ensure_device(&mut tx, req).await?;
    let (role, exists) = claim_role(&mut tx, req.id).await?;
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

/// Refuses to go on unless the group `backup_client` exists and this role may create roles.
async fn check_may_enrol(pool: &PgPool) -> anyhow::Result<()> {
    let (may_create, _database, group) = crate::store::roles::may_enrol(pool).await?;
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
    Ok(())
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

/// The device's role: the one recorded for it, else a new opaque name. Returns it with whether
/// it exists already; a role of that name that is not a device role is refused rather than
/// taken over. A recorded role with a name made from the device id is renamed to an opaque one
/// first: the device needs the new `init` line (new password) anyway, so the new name costs it
/// nothing, and no role name in the cluster names the device any longer.
async fn claim_role(conn: &mut PgConnection, device_id: &str) -> anyhow::Result<(String, bool)> {
    let existing = crate::store::roles::device_role(&mut *conn, device_id).await?;
    if let Some(role) = existing.as_ref().filter(|r| is_opaque_role_name(r)) {
        let (exists, _) = crate::store::roles::role_state(conn, role).await?;
        return Ok((role.clone(), exists));
    }
    let role = new_role_name()?;
    if crate::store::roles::role_state(conn, &role).await?.0 {
        return Err(usage_err!(
            "a database role named {role} already exists and is not a device role; drop or rename \
             it, then enrol again"
        ));
    }
    if let Some(old) = existing
        && crate::store::roles::role_state(conn, &old).await?.0
    {
        crate::store::roles::rename_role(conn, &old, &role).await?;
        return Ok((role, true));
    }
    Ok((role, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_opaque_and_distinct() {
        let a = new_role_name().unwrap();
        assert!(is_opaque_role_name(&a) && a.len() == 30, "{a}");
        assert_ne!(a, new_role_name().unwrap());
        assert!(!is_opaque_role_name("fleet_laptop1_0123456789ab"));
        assert!(!is_opaque_role_name("fleet_0123456789ABCDEF01234567"));
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
