//! `restic-fleet db migrate|roles`: the schema migrations, and the group roles with their grants.
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
//! migrations create; devices get nothing on a new table until
//! [`DEVICE_GRANTS`](crate::store::roles::DEVICE_GRANTS) names it (and a policy in its migration
//! restricts the rows).
//!
//! Anything that lets the database decide what a device executes or contacts (restic args,
//! hooks, ping URLs, backend environment) must stay writable by admins only: never add such a
//! table or column to [`DEVICE_GRANTS`](crate::store::roles::DEVICE_GRANTS).

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::commands::explain;
use crate::domain::exit::{self, Failure};
use crate::output::print_json;
use crate::store::roles::{ADMIN, CLIENT, VIEWER};
use crate::usage_err;

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply missing schema migrations (needs a role that may change the schema).
    Migrate {
        /// Database URL (default: DATABASE_URL, else the config's).
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
    },
    /// Create or update the roles backup_admin, backup_client and backup_viewer with their
    /// grants (passwords from a prompt or --*-password-file; safe to run again).
    Roles(RolesArgs),
}

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

pub async fn run(config_path: &Path, cmd: DbCommand) -> anyhow::Result<u8> {
    match cmd {
        DbCommand::Migrate { database_url } => migrate(config_path, database_url.as_deref()).await,
        DbCommand::Roles(args) => explain(roles(config_path, args).await),
    }
}

/// `db migrate`: applies the migrations this client has and the database lacks.
async fn migrate(config_path: &Path, database_url: Option<&str>) -> anyhow::Result<u8> {
    let url = crate::commands::database_url(config_path, database_url)?;
    let pool = crate::store::db::connect_no_migrate(&url).await?;
    crate::store::db::migrate(&pool).await?;
    println!(
        "database schema is at version {}",
        crate::store::db::latest_version()
    );
    Ok(exit::SUCCESS)
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
    let me = crate::store::roles::current_role(&pool).await?;
    if !me.superuser && !me.createrole {
        return Err(Failure::usage(format!(
            "the database role {:?} may not create roles; run `restic-fleet db roles` connected \
             as a superuser (e.g. postgres) with --database-url",
            me.name
        ))
        .into());
    }
    let mut results = Vec::new();
    for (role, pw) in &pws {
        let secret = crate::domain::scram::password_for_server(pw)?;
        let created = with_retry(|| crate::store::roles::upsert_role(&pool, role, &secret)).await?;
        results.push(RoleResult { role, created });
    }
    let created = with_retry(|| crate::store::roles::upsert_group(&pool, CLIENT)).await?;
    results.insert(
        1,
        RoleResult {
            role: CLIENT,
            created,
        },
    );
    let statements =
        crate::store::roles::grants(&me.database_quoted, &me.name_quoted, me.superuser);
    with_retry(|| crate::store::roles::apply_grants(&pool, &statements)).await?;
    let report = RolesReport {
        database: me.database,
        roles: results,
    };
    if args.json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(exit::SUCCESS)
}

/// The sentences `db roles` prints without `--json`.
fn print_report(report: &RolesReport) {
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
