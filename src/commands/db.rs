//! `restic-fleet db roles`: the group roles with their grants.
//!
//! - `backup_admin`: everything on the database and on the tables (manages the fleet), plus
//!   CREATEROLE and ADMIN OPTION on `backup_client`, so that `device enroll` and `device rm`
//!   can create, rotate and drop device roles.
//! - `backup_client`: a group without login. Every device logs in with its own role
//!   (`device enroll`), a member of this group; the grants below say what a device may do at
//!   all, and the row-level security policies of migration 006 restrict it to its own rows.
//!   A `backup_client` login from before per-device roles loses its login and password here.
//! - `backup_viewer`: SELECT only (`status`, `runs list`, dashboards); the policies hide secret
//!   settings (`repository_url` among them) and ping URLs from it.
//!
//! Passwords come from `--admin-password-file` etc. or a prompt (no echo; one line per role
//! from standard input when it is not a terminal), never from an argument, and never appear
//! in an SQL statement's text: they are passed as a transaction-local setting that a
//! server-side block reads. Running the command again updates the passwords (ALTER ROLE) and
//! re-applies the grants. Default privileges give admins and viewers tables that later
//! migrations create; devices get nothing on a new table until [`DEVICE_GRANTS`] names it
//! (and a policy in its migration restricts the rows).
//!
//! Anything that lets the database decide what a device executes or contacts (restic args,
//! hooks, ping URLs, backend environment) must stay writable by admins only: never add such a
//! table or column to [`DEVICE_GRANTS`].

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;
use sqlx::PgPool;

use crate::commands::explain;
use crate::domain::exit::{self, Failure};
use crate::output::print_json;
use crate::usage_err;

#[derive(Debug, Args)]
pub struct RolesArgs {
    /// Database URL of a superuser or a role with CREATEROLE that owns the schema (default:
    /// DATABASE_URL, else the config file's).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// File holding backup_admin's password (first line); default: prompt.
    #[arg(long, value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// Ignored: backup_client is now a group without login; devices log in with their own
    /// roles (`restic-fleet device enroll`).
    #[arg(long, value_name = "FILE", hide = true)]
    pub client_password_file: Option<PathBuf>,
    /// File holding backup_viewer's password (first line); default: prompt.
    #[arg(long, value_name = "FILE")]
    pub viewer_password_file: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub const ADMIN: &str = "backup_admin";
pub const CLIENT: &str = "backup_client";
pub const VIEWER: &str = "backup_viewer";

/// `db roles --json`: `database`, `roles` (each `role` and `created`: false when it existed
/// and only its password and grants were updated).
#[derive(Debug, Serialize)]
pub struct RolesReport {
    pub database: String,
    pub roles: Vec<RoleResult>,
}

#[derive(Debug, Serialize)]
pub struct RoleResult {
    pub role: &'static str,
    pub created: bool,
}

pub async fn run(config_path: &Path, args: RolesArgs) -> anyhow::Result<u8> {
    explain(roles(config_path, args).await)
}

fn read_file(role: &str, path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage_err!(
            "cannot read the password file for {role} {}: {e}; check the path",
            path.display()
        )
    })?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// Reads the two passwords (admin, viewer), all before anything touches the database.
fn passwords(args: &RolesArgs) -> anyhow::Result<Vec<(&'static str, String)>> {
    if args.client_password_file.is_some() {
        tracing::warn!(
            "--client-password-file is ignored: backup_client is a group without login now; \
             give each machine its own role with `restic-fleet device enroll ID`"
        );
    }
    let files = [
        (ADMIN, &args.admin_password_file, "--admin-password-file"),
        (VIEWER, &args.viewer_password_file, "--viewer-password-file"),
    ];
    let tty = std::io::stdin().is_terminal();
    let mut stdin_lines = std::io::stdin().lock().lines();
    let mut out = Vec::new();
    for (role, file, flag) in files {
        let pw = match file {
            Some(p) => read_file(role, p)?,
            None if tty => {
                let a = rpassword::prompt_password(format!("password for {role}: "))?;
                let b = rpassword::prompt_password(format!("password for {role} (again): "))?;
                if a != b {
                    return Err(usage_err!(
                        "the two passwords typed for {role} differ; run the command again"
                    ));
                }
                a
            }
            None => match stdin_lines.next() {
                Some(line) => line?.trim_end_matches('\r').to_string(),
                None => String::new(),
            },
        };
        if pw.is_empty() {
            return Err(usage_err!(
                "no password for {role}: give {flag} FILE, or type it at the prompt (one line per \
                 role on standard input when it is not a terminal)"
            ));
        }
        out.push((role, pw));
    }
    Ok(out)
}

fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            // duplicate_object (a parallel CREATE ROLE), internal "tuple concurrently updated",
            // serialization_failure, deadlock_detected
            Some("42710") | Some("XX000") | Some("40001") | Some("40P01") | Some("23505")
        ),
        _ => false,
    }
}

/// Creates or updates one role with `secret` (what [`crate::domain::scram::password_for_server`]
/// makes of the password: its SCRAM verifier when it is plain ASCII), which travels as a bound
/// parameter only.
async fn upsert_role(pool: &PgPool, role: &str, secret: &str) -> Result<bool, sqlx::Error> {
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
async fn upsert_group(pool: &PgPool, role: &str) -> Result<bool, sqlx::Error> {
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
];

/// The GRANT statements for database `db` (an already quoted identifier), run by `me` (quoted).
fn grants(db: &str, me: &str, for_admin_too: bool) -> Vec<String> {
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
        // Only a superuser may hand out CREATEROLE.
        s.push(format!("ALTER ROLE {ADMIN} WITH CREATEROLE"));
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

async fn apply_grants(pool: &PgPool, statements: &[String]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for st in statements {
        sqlx::query(st).execute(&mut *tx).await?;
    }
    tx.commit().await
}

async fn with_retry<T, F, Fut>(mut f: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if attempt < 8 && is_retryable(&e) => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            other => return other,
        }
    }
}

async fn roles(config_path: &Path, args: RolesArgs) -> anyhow::Result<u8> {
    let url = crate::commands::database_url(config_path, args.database_url.as_deref())?;
    let pws = passwords(&args)?;
    let pool = crate::store::db::connect(&url).await?;
    let (me, superuser, createrole, db, db_q, me_q): (String, bool, bool, String, String, String) =
        sqlx::query_as(
            "SELECT current_user::text, rolsuper, rolcreaterole, current_database()::text, \
             quote_ident(current_database()), quote_ident(current_user) \
             FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&pool)
        .await?;
    if !superuser && !createrole {
        return Err(Failure::usage(format!(
            "the database role {me:?} may not create roles; run `restic-fleet db roles` connected \
             as a superuser (e.g. postgres) with --database-url"
        ))
        .into());
    }
    let mut results = Vec::new();
    for (role, pw) in &pws {
        let secret = crate::domain::scram::password_for_server(pw)?;
        let created = with_retry(|| upsert_role(&pool, role, &secret)).await?;
        results.push(RoleResult { role, created });
    }
    let created = with_retry(|| upsert_group(&pool, CLIENT)).await?;
    results.insert(
        1,
        RoleResult {
            role: CLIENT,
            created,
        },
    );
    let statements = grants(&db_q, &me_q, superuser);
    with_retry(|| apply_grants(&pool, &statements)).await?;
    let report = RolesReport {
        database: db,
        roles: results,
    };
    if args.json {
        print_json(&report)?;
    } else {
        for r in &report.roles {
            println!(
                "{} role {}",
                if r.created { "created" } else { "updated" },
                r.role
            );
        }
        println!(
            "granted on database {:?}: {ADMIN} everything (and enrolling devices), {CLIENT} \
             (group of the device roles, no login) its own rows only, {VIEWER} read only \
             without secrets",
            report.database
        );
        println!("next: `restic-fleet device enroll ID` gives each machine its own login role");
    }
    Ok(exit::SUCCESS)
}
