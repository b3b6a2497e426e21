//! Database connection and schema migrations.
//!
//! Migrations are embedded in the binary. On every connection the client compares the applied
//! versions with its own; when some are missing it applies them under sqlx's advisory lock (so
//! twenty clients starting at once against an empty database end with one migrated schema).
//! A role that may not change the schema (the seed's `backup_client`) works as long as the
//! schema is current; otherwise it gets a message naming the version needed and the admin
//! command that applies it.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::exit::Failure;
use crate::util::mask_url;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The newest schema version this client knows.
pub fn latest_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

fn connect_options(url: &str) -> anyhow::Result<PgConnectOptions> {
    let opts: PgConnectOptions = url.parse().map_err(|e| {
        Failure::usage(format!(
            "the database URL {} is not valid ({e}); expected postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            mask_url(url)
        ))
    })?;
    Ok(opts
        .application_name("restic-fleet")
        .log_statements(tracing::log::LevelFilter::Trace))
}

/// Turns a connection error into one sentence that names the database and the fix.
pub fn connect_error(url: &str, err: sqlx::Error) -> anyhow::Error {
    let masked = mask_url(url);
    let detail = match &err {
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    };
    anyhow::Error::new(Failure::failed(format!(
        "cannot connect to the database at {masked}: {detail}; check database_url in the config \
         (or DATABASE_URL) and that PostgreSQL is running and reachable"
    )))
}

/// The database could not be reached (down, restarting, network away), as opposed to refusing
/// us (bad password, missing privilege, SQL error). Only this makes `run` fall back to the
/// local copy and the spool.
#[derive(Debug)]
pub struct Unreachable {
    pub message: String,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Unreachable {}

/// Whether a sqlx error means the server or the path to it is away.
pub fn sqlx_unreachable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        // 08: connection exceptions; 57P01-57P03: admin/crash shutdown, cannot connect now;
        // 53300: too many connections.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300"),
        _ => false,
    }
}

/// Whether an error (anywhere in its chain) says the database could not be reached.
pub fn is_unreachable(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<Unreachable>().is_some()
            || e.downcast_ref::<sqlx::Error>()
                .is_some_and(sqlx_unreachable)
    })
}

/// Opens the one connection a `run` or `sync` uses (within `timeout`), and brings the schema up
/// to date. An unreachable server is an [`Unreachable`] error; anything else (bad URL, bad
/// password, old schema) a [`Failure`].
pub async fn connect_single(url: &str, timeout: Duration) -> anyhow::Result<sqlx::PgConnection> {
    let opts = connect_options(url)?;
    let unreachable = |detail: String| {
        anyhow::Error::new(Unreachable {
            message: format!(
                "cannot connect to the database at {}: {detail}; check database_url in the config \
                 (or DATABASE_URL) and that PostgreSQL is running and reachable",
                mask_url(url)
            ),
        })
    };
    let mut conn = match tokio::time::timeout(timeout, opts.connect()).await {
        Err(_) => {
            return Err(unreachable(format!(
                "no answer within {}s",
                timeout.as_secs()
            )));
        }
        Ok(Err(e)) if sqlx_unreachable(&e) => return Err(unreachable(e.to_string())),
        Ok(Err(e)) => return Err(connect_error(url, e)),
        Ok(Ok(c)) => c,
    };
    let applied = applied_versions_on(&mut conn).await?;
    if MIGRATOR.iter().any(|m| !applied.contains(&m.version)) {
        migrate_on(&mut conn).await?;
    }
    Ok(conn)
}

/// Connects, and brings the schema up to date if it is not.
pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    let pool = connect_no_migrate(url).await?;
    ensure_schema(&pool).await?;
    Ok(pool)
}

/// Connects without looking at the schema.
pub async fn connect_no_migrate(url: &str) -> anyhow::Result<PgPool> {
    let opts = connect_options(url)?;
    // One direct attempt first: a pool retries a refused connection until its acquire timeout,
    // and a database that is down should be reported at once, not after 30 seconds.
    let probe = tokio::time::timeout(CONNECT_TIMEOUT, opts.connect())
        .await
        .map_err(|_| {
            Failure::failed(format!(
                "cannot connect to the database at {}: no answer within {}s; check database_url \
                 in the config (or DATABASE_URL) and that PostgreSQL is running and reachable",
                mask_url(url),
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| connect_error(url, e))?;
    let _ = sqlx::Connection::close(probe).await;
    Ok(PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_lazy_with(opts))
}

/// How long the first connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The versions recorded as successfully applied (empty when the table does not exist).
pub async fn applied_versions(pool: &PgPool) -> anyhow::Result<BTreeSet<i64>> {
    let mut conn = pool.acquire().await?;
    applied_versions_on(&mut conn).await
}

async fn applied_versions_on(pool: &mut sqlx::PgConnection) -> anyhow::Result<BTreeSet<i64>> {
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(&mut *pool)
        .await?;
    if exists.is_none() {
        return Ok(BTreeSet::new());
    }
    let rows: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut *pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Applies missing migrations, or explains why this role cannot.
pub async fn ensure_schema(pool: &PgPool) -> anyhow::Result<()> {
    let applied = applied_versions(pool).await?;
    let missing: Vec<i64> = MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    migrate(pool).await
}

/// Applies every missing migration (`restic-fleet db migrate`).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    migrate_on(&mut conn).await
}

async fn migrate_on(pool: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    let mut migrator = sqlx::migrate!("./migrations");
    // A newer client may already have applied migrations this one does not know: keep working.
    migrator.set_ignore_missing(true);
    match migrator.run(&mut *pool).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let permission = match &e {
                sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(db)) => {
                    db.code().as_deref() == Some("42501")
                }
                sqlx::migrate::MigrateError::ExecuteMigration(sqlx::Error::Database(db), _) => {
                    db.code().as_deref() == Some("42501")
                }
                _ => false,
            };
            if permission {
                let applied = applied_versions_on(pool).await.unwrap_or_default();
                let missing: Vec<String> = MIGRATOR
                    .iter()
                    .map(|m| m.version)
                    .filter(|v| !applied.contains(v))
                    .map(|v| v.to_string())
                    .collect();
                let current = applied.last().copied().unwrap_or(0);
                Err(Failure::failed(format!(
                    "the database schema is at version {current} with migration(s) {} missing, but \
                     this client needs version {}, and this database role may not change the \
                     schema; an admin applies it with `restic-fleet db migrate` (connected as the \
                     schema owner, e.g. backup_admin)",
                    missing.join(", "),
                    latest_version()
                ))
                .into())
            } else {
                Err(anyhow::anyhow!("applying database migrations failed: {e}"))
            }
        }
    }
}
