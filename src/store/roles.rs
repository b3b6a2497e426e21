//! PostgreSQL roles and grants: the group roles of `db roles` and the login role of each
//! enrolled device (created, rotated with a SCRAM verifier, dropped).
//!
//! Passwords and verifiers never appear in an SQL statement's text: they travel as a
//! transaction-local setting (bound as a parameter) that a server-side block reads.

use sqlx::{PgConnection, PgPool};

/// The group roles `db roles` creates.
pub const ADMIN: &str = "backup_admin";
pub const CLIENT: &str = "backup_client";
pub const VIEWER: &str = "backup_viewer";

/// Creates or updates one role with `secret` (what [`crate::domain::scram::password_for_server`]
/// makes of the password: its SCRAM verifier when it is plain ASCII), which travels as a bound
/// parameter only.
pub async fn upsert_role(pool: &PgPool, role: &str, secret: &str) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let existed: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query("SELECT set_config('restic_fleet.role', $1, true), set_config('restic_fleet.password', $2, true)")
        .bind(role)
        .bind(secret)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DO $$ BEGIN \
           IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_setting('restic_fleet.role')) THEN \
             EXECUTE format('ALTER ROLE %I WITH LOGIN PASSWORD %L', \
               current_setting('restic_fleet.role'), current_setting('restic_fleet.password')); \
           ELSE \
             EXECUTE format('CREATE ROLE %I WITH LOGIN PASSWORD %L', \
               current_setting('restic_fleet.role'), current_setting('restic_fleet.password')); \
           END IF; \
         END $$",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT set_config('restic_fleet.password', '', true)")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(!existed)
}

/// Creates `backup_client` as a group without login, or takes the login (and password) away
/// from an existing shared `backup_client` role.
pub async fn upsert_group(pool: &PgPool, role: &str) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let existed: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&mut *tx)
            .await?;
    let st = if existed {
        format!("ALTER ROLE {role} WITH NOLOGIN PASSWORD NULL")
    } else {
        format!("CREATE ROLE {role} WITH NOLOGIN")
    };
    sqlx::query(&st).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(!existed)
}

/// What a device role may do at all, granted to the group `backup_client`; the row-level
/// security policies of migration 006 then restrict every one of these to the device's own
/// rows. Column lists keep a device from touching the rest of its own rows: on `devices` only
/// heartbeat and identity, on `schedules` only the run bookkeeping. `runs` is granted whole
/// (INSERT and UPDATE of every column, later ones included) because a device writes its own
/// run records. A device writes nothing else: not backup_jobs, settings, device_roles, nor any
/// schedule or device column not listed here, and it deletes nothing.
pub const DEVICE_GRANTS: &[&str] = &[
    "GRANT SELECT ON devices, backup_jobs, schedules, runs, settings, latest_runs, job_summary, \
     _sqlx_migrations TO backup_client",
    // `status` on a device compares its version with the schema's minimum (migration 016).
    "GRANT SELECT ON schema_client_minimum TO backup_client",
    "GRANT INSERT (id, name, platform, hostname, metadata), \
     UPDATE (name, platform, hostname, last_seen, metadata, updated_at) ON devices TO backup_client",
    "GRANT UPDATE (last_run_at, next_run_at, updated_at) ON schedules TO backup_client",
    // Column grants, not table grants: a device never chooses a row id (it could take the
    // ids ahead of the sequence and make every other device's insert fail) and cannot take a
    // table lock (LOCK TABLE needs a table-level privilege) that would stall the fleet.
    "GRANT INSERT (client_run_id, job_id, device_id, start_time, end_time, status, exit_code, \
     error_message, files_new, files_changed, files_unmodified, dirs_new, dirs_changed, \
     dirs_unmodified, data_added_bytes, total_files_processed, total_bytes_processed, \
     duration_seconds, snapshot_id, restic_output, restic_errors, triggered_by, metadata), \
     UPDATE (end_time, status, exit_code, error_message, files_new, files_changed, \
     files_unmodified, dirs_new, dirs_changed, dirs_unmodified, data_added_bytes, \
     total_files_processed, total_bytes_processed, duration_seconds, snapshot_id, \
     restic_output, restic_errors, metadata) ON runs TO backup_client",
    "GRANT USAGE, SELECT ON SEQUENCE runs_id_seq TO backup_client",
    // Derived run state (migration 008), written only by its triggers; `status --device` of the
    // device itself reads its own jobs' rows.
    "GRANT SELECT ON job_run_state TO backup_client",
    // Maintenance (migration 009): policies let only the maintenance owner read every job's
    // retention, and a device write only its own maintenance steps.
    "GRANT SELECT ON job_retention TO backup_client",
    // Ping URLs (migration 012): every job read looks the URL up, and the policy shows a device
    // only its own jobs' URLs, the maintenance owner included.
    "GRANT SELECT ON job_ping_urls TO backup_client",
    "GRANT SELECT, INSERT (device_id, step, start_time, end_time, status, exit_code, \
     snapshots_removed, bytes_freed, error_message, output, errors, metadata), \
     UPDATE (end_time, status, exit_code, snapshots_removed, bytes_freed, error_message, \
     output, errors, metadata) ON maintenance_runs TO backup_client",
    "GRANT USAGE, SELECT ON SEQUENCE maintenance_runs_id_seq TO backup_client",
    // Repositories (migration 015): a device registers the ones it maintains through
    // fleet_register_repository, tags its steps with them and records their size.
    "GRANT INSERT (repository_id) ON maintenance_runs TO backup_client",
    "GRANT SELECT, UPDATE (snapshot_count, total_size, counted_at, updated_at) ON repositories \
     TO backup_client",
    "GRANT EXECUTE ON FUNCTION fleet_register_repository(TEXT, BOOLEAN) TO backup_client",
];

/// The GRANT statements for database `db` (an already quoted identifier), run by `me` (quoted).
pub fn grants(db: &str, me: &str, for_admin_too: bool) -> Vec<String> {
    let mut s = vec![
        format!("GRANT ALL PRIVILEGES ON DATABASE {db} TO {ADMIN}"),
        format!("GRANT USAGE, CREATE ON SCHEMA public TO {ADMIN}"),
        format!("GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA public TO {ADMIN}"),
        format!("GRANT ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public TO {ADMIN}"),
        format!("GRANT CONNECT ON DATABASE {db} TO {CLIENT}, {VIEWER}"),
        format!("GRANT USAGE ON SCHEMA public TO {CLIENT}, {VIEWER}"),
        // Device roles are created, rotated and dropped by backup_admin (`device enroll`).
        format!("GRANT {CLIENT} TO {ADMIN} WITH ADMIN OPTION"),
        // Re-running repairs drift: take away what the roles must not have, then grant.
        format!("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {CLIENT}"),
        format!("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {CLIENT}"),
        format!(
            "REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM {VIEWER}"
        ),
        format!("REVOKE UPDATE ON ALL SEQUENCES IN SCHEMA public FROM {VIEWER}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {VIEWER}"),
    ];
    if for_admin_too {
        // Only a superuser may hand out CREATEROLE, and change the catalog's grants.
        s.push(format!("ALTER ROLE {ADMIN} WITH CREATEROLE"));
        s.extend(session_list_grants());
    }
    s.extend(DEVICE_GRANTS.iter().map(|g| g.to_string()));
    let mut owners = vec![me.to_string()];
    if for_admin_too && me != ADMIN {
        owners.push(ADMIN.to_string());
    }
    for owner in owners {
        let p = format!("ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public");
        s.push(format!("{p} GRANT ALL PRIVILEGES ON TABLES TO {ADMIN}"));
        s.push(format!("{p} GRANT ALL PRIVILEGES ON SEQUENCES TO {ADMIN}"));
        // A new table reaches devices only through DEVICE_GRANTS and a policy.
        s.push(format!("{p} REVOKE ALL ON TABLES FROM {CLIENT}"));
        s.push(format!("{p} REVOKE ALL ON SEQUENCES FROM {CLIENT}"));
        s.push(format!("{p} GRANT SELECT ON TABLES TO {VIEWER}"));
    }
    s
}

/// Who is connected (`pg_stat_activity`, and the functions that give a session's role) is
/// readable by every role by default; in this database only admins, viewers and monitoring
/// (`pg_read_all_stats`, in `pg_monitor`) keep it, so a device cannot watch the fleet's
/// sessions. `pg_roles` stays readable: PostgreSQL clients and the policies' own role checks
/// read it, hence device role names that name no device.
fn session_list_grants() -> Vec<String> {
    let objects = [
        "SELECT ON pg_catalog.pg_stat_activity",
        "EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer)",
        "EXECUTE ON FUNCTION pg_catalog.pg_stat_get_backend_userid(integer)",
    ];
    let mut s: Vec<String> = objects
        .iter()
        .map(|o| format!("REVOKE {o} FROM PUBLIC"))
        .collect();
    s.extend(
        objects
            .iter()
            .map(|o| format!("GRANT {o} TO {ADMIN}, {VIEWER}, pg_read_all_stats")),
    );
    s
}

/// Runs the grant statements in one transaction, in order.
pub async fn apply_grants(pool: &PgPool, statements: &[String]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for st in statements {
        sqlx::query(st).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Who `db roles` runs as: the role, whether it is a superuser or may create roles, and the
/// database, with the role and database names quoted as identifiers.
#[derive(Debug, sqlx::FromRow)]
pub struct CurrentRole {
    pub name: String,
    pub superuser: bool,
    pub createrole: bool,
    pub database: String,
    pub database_quoted: String,
    pub name_quoted: String,
}

/// The role this session runs as (see [`CurrentRole`]).
pub async fn current_role(pool: &PgPool) -> anyhow::Result<CurrentRole> {
    let (name, superuser, createrole, database, database_quoted, name_quoted) = sqlx::query_as(
        "SELECT current_user::text, rolsuper, rolcreaterole, current_database()::text, \
         quote_ident(current_database()), quote_ident(current_user) \
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(pool)
    .await?;
    Ok(CurrentRole {
        name,
        superuser,
        createrole,
        database,
        database_quoted,
        name_quoted,
    })
}

/// The enrolled device this session's role belongs to (None for admins, viewers and
/// superusers), and whether that device is the maintenance owner.
pub async fn session_device(pool: &PgPool) -> anyhow::Result<(Option<String>, bool)> {
    Ok(
        sqlx::query_as("SELECT fleet_current_device(), fleet_is_maintenance_owner()")
            .fetch_one(pool)
            .await?,
    )
}

/// Whether this session's role may create roles (a superuser or CREATEROLE), the database's
/// name, and whether the group `backup_client` exists.
pub async fn may_enrol(pool: &PgPool) -> anyhow::Result<(bool, String, bool)> {
    Ok(sqlx::query_as(
        "SELECT rolsuper OR rolcreaterole, current_database()::text, \
           EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) \
         FROM pg_roles WHERE rolname = current_user",
    )
    .bind(CLIENT)
    .fetch_one(pool)
    .await?)
}

/// The login role recorded for a device in `device_roles`, if it has one.
pub async fn device_role(
    conn: &mut PgConnection,
    device_id: &str,
) -> anyhow::Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT role_name FROM device_roles WHERE device_id = $1")
            .bind(device_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Whether a role of this name exists, and whether it is a member of `backup_client`.
pub async fn role_state(conn: &mut PgConnection, role: &str) -> anyhow::Result<(bool, bool)> {
    Ok(sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1), \
           EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member \
                   JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname = $1 AND g.rolname = $2)",
    )
    .bind(role)
    .bind(CLIENT)
    .fetch_one(conn)
    .await?)
}

/// CREATE ROLE (in the group) or ALTER ROLE ... PASSWORD `secret` (a SCRAM verifier), which
/// only travels as a bound parameter.
pub async fn set_device_login(
    conn: &mut PgConnection,
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
    .bind(CLIENT)
    .execute(&mut *conn)
    .await?;
    // An attribute is switched off only when it is on: PostgreSQL refuses a CREATEROLE
    // non-superuser (backup_admin) any mention of SUPERUSER, even NOSUPERUSER.
    let block = if exists {
        "DO $$ DECLARE r pg_roles; BEGIN \
           SELECT * INTO r FROM pg_roles WHERE rolname = current_setting('restic_fleet.role'); \
           IF r.rolsuper THEN \
             EXECUTE format('ALTER ROLE %I NOSUPERUSER', r.rolname); \
           END IF; \
           IF r.rolcreatedb OR r.rolcreaterole THEN \
             EXECUTE format('ALTER ROLE %I NOCREATEDB NOCREATEROLE', r.rolname); \
           END IF; \
           EXECUTE format('ALTER ROLE %I WITH LOGIN PASSWORD %L', \
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
    sqlx::query(block).execute(&mut *conn).await?;
    sqlx::query("SELECT set_config('restic_fleet.password', '', true)")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Renames role `from` to `to` (inside the caller's transaction); the names travel as bound
/// parameters and are quoted by the server.
pub async fn rename_role(conn: &mut PgConnection, from: &str, to: &str) -> anyhow::Result<()> {
    sqlx::query(
        "SELECT set_config('restic_fleet.role', $1, true), \
                set_config('restic_fleet.new_role', $2, true)",
    )
    .bind(from)
    .bind(to)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DO $$ BEGIN \
           EXECUTE format('ALTER ROLE %I RENAME TO %I', current_setting('restic_fleet.role'), \
             current_setting('restic_fleet.new_role')); \
         END $$",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records (or moves) the device's login role in `device_roles`, with the time of rotation.
pub async fn record_device_role(
    conn: &mut PgConnection,
    device_id: &str,
    role: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO device_roles (device_id, role_name) VALUES ($1, $2) \
         ON CONFLICT (device_id) DO UPDATE SET role_name = EXCLUDED.role_name, rotated_at = NOW()",
    )
    .bind(device_id)
    .bind(role)
    .execute(conn)
    .await?;
    Ok(())
}

/// Drops the login role of `device_id` (inside the caller's transaction, before its device row
/// goes away); returns the role's name when there was one.
pub async fn drop_device_role(
    conn: &mut PgConnection,
    device_id: &str,
) -> anyhow::Result<Option<String>> {
    let role = device_role(&mut *conn, device_id).await?;
    if let Some(r) = &role {
        sqlx::query("SELECT set_config('restic_fleet.role', $1, true)")
            .bind(r)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "DO $$ BEGIN \
               IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_setting('restic_fleet.role')) THEN \
                 EXECUTE format('DROP ROLE %I', current_setting('restic_fleet.role')); \
               END IF; \
             END $$",
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(role)
}
