//! Database connection and schema migrations.
//!
//! Migrations are embedded in the binary. On every connection the client compares the applied
//! versions with its own; when some are missing it applies them under sqlx's advisory lock (so
//! twenty clients starting at once against an empty database end with one migrated schema).
//! A role that may not change the schema (the seed's `backup_client`) works as long as the
//! schema is current; otherwise it gets a message naming the version needed and the admin
//! command that applies it.
//!
//! Behind PgBouncer in transaction pooling mode (the database URL carries `pgbouncer=true`), a
//! server connection belongs to a client only for one transaction, and PgBouncer 1.18 knows
//! nothing of prepared statements. sqlx prepares every query (named `sqlx_s_N` statements even
//! with its statement cache off, and Parse and Bind in separate Sync messages, i.e. separate
//! "transactions" for PgBouncer), and its migrator holds a session advisory lock. So in that
//! mode every use of a pooled connection runs inside one transaction (begun when the connection
//! is handed out, committed when it comes back), which pins one server connection for it;
//! the statements it prepared are deallocated before the commit, so the next client of that
//! server connection finds none of them; the statement cache is off, and no
//! `extra_float_digits` startup parameter is sent (PgBouncer would refuse it). A connection
//! whose transaction failed is closed instead of reused (PgBouncer then drops its server
//! connection). See docs/pgbouncer.md.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::domain::exit::Failure;
use crate::domain::text::mask_url;

/// How long `run` waits for the database to answer a connection attempt before it goes on
/// with the local copy.
pub const OFFLINE_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The newest schema version this client knows.
pub fn latest_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// `pgbouncer=true` (or `false`) in the URL's query string: removed from the URL handed to
/// sqlx, which does not know it.
pub(crate) fn split_pooler(url: &str) -> anyhow::Result<(String, bool)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), false));
    };
    let mut pooler = false;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("pgbouncer", v)) => {
                pooler = match v.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    _ => {
                        return Err(Failure::usage(format!(
                            "the database URL {} has pgbouncer={v:?}; use pgbouncer=true behind \
                             PgBouncer in transaction pooling mode, or leave it out",
                            mask_url(url)
                        ))
                        .into());
                    }
                }
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, pooler))
}

/// The connection options, and whether the URL asks for PgBouncer transaction pooling mode.
fn parse_options(url: &str) -> anyhow::Result<(PgConnectOptions, bool)> {
    let (plain, pooler) = split_pooler(url)?;
    let opts: PgConnectOptions = plain.parse().map_err(|e| {
        Failure::usage(format!(
            "the database URL {} is not valid ({e}); expected postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            mask_url(url)
        ))
    })?;
    // sqlx warns of every statement over a second with its whole text: a migration over a big
    // fleet printed two hundred lines of SQL. Slow statements are shown with -v instead.
    let opts = opts
        .application_name("restic-fleet")
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(
            tracing::log::LevelFilter::Debug,
            std::time::Duration::from_secs(1),
        );
    Ok(if pooler {
        (
            opts.statement_cache_capacity(0).extra_float_digits(None),
            true,
        )
    } else {
        (opts, false)
    })
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
    let (opts, pooler) = parse_options(url)?;
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
    if pooler {
        POOLER.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    begin_pinned(&mut conn).await?;
    let applied = applied_versions_on(&mut conn).await?;
    if MIGRATOR.iter().any(|m| !applied.contains(&m.version)) {
        migrate_on(&mut conn).await?;
    }
    release_pinned(&mut conn).await?;
    Ok(conn)
}

/// Behind PgBouncer (transaction pooling), a single connection's statements must run inside a
/// transaction, or sqlx's Parse and Bind can reach different server connections: this begins
/// one (with sqlx's own transaction manager, so a `begin()` inside becomes a savepoint) unless
/// one is open. Without PgBouncer it does nothing. `run` and `sync` call it before each use of
/// their one connection, and [`release_pinned`] when a use ends.
pub async fn begin_pinned(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    use sqlx::TransactionManager;
    use sqlx::postgres::PgTransactionManager;
    if POOLER.load(std::sync::atomic::Ordering::Relaxed)
        && PgTransactionManager::get_transaction_depth(conn) == 0
    {
        PgTransactionManager::begin(conn, None).await?;
    }
    Ok(())
}

/// Ends what [`begin_pinned`] began: deallocates the statements this use prepared and commits,
/// so the server connection goes back to PgBouncer clean (and is not held while restic runs).
pub async fn release_pinned(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    use sqlx::TransactionManager;
    use sqlx::postgres::PgTransactionManager;
    if POOLER.load(std::sync::atomic::Ordering::Relaxed)
        && PgTransactionManager::get_transaction_depth(conn) > 0
    {
        sqlx::Executor::execute(&mut *conn, "DEALLOCATE ALL").await?;
        PgTransactionManager::commit(conn).await?;
    }
    Ok(())
}

/// Rolls back what [`begin_pinned`] began after a statement failed in it (the transaction is
/// aborted, so [`release_pinned`]'s DEALLOCATE would fail too), so that the connection can begin
/// again. Without PgBouncer, or with no transaction open, it does nothing.
pub async fn abort_pinned(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    use sqlx::TransactionManager;
    use sqlx::postgres::PgTransactionManager;
    if POOLER.load(std::sync::atomic::Ordering::Relaxed)
        && PgTransactionManager::get_transaction_depth(conn) > 0
    {
        PgTransactionManager::rollback(conn).await?;
    }
    Ok(())
}

/// Connects, and brings the schema up to date if it is not.
pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    let pool = connect_no_migrate(url).await?;
    ensure_schema(&pool).await?;
    Ok(pool)
}

/// Connects without looking at the schema.
pub async fn connect_no_migrate(url: &str) -> anyhow::Result<PgPool> {
    let (opts, pooler) = parse_options(url)?;
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
    let options = PgPoolOptions::new()
        // One connection: every command sends its statements one after another, and with more
        // the next statement would often open a new connection while sqlx is still returning
        // the previous one to the pool in the background (4-5 connections per `run`). Behind
        // PgBouncer it also makes the next statement wait until the previous one's
        // transaction is committed (see `transaction_pooling`), so a command sees its own
        // writes in order.
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30));
    if !pooler {
        return Ok(options.connect_lazy_with(opts));
    }
    POOLER.store(true, std::sync::atomic::Ordering::Relaxed);
    let pool = transaction_pooling(options).connect_lazy_with(opts);
    if let Ok(mut pools) = POOLS.lock() {
        pools.push(pool.clone());
    }
    Ok(pool)
}

/// Whether this process talks to PostgreSQL through PgBouncer (the URL said `pgbouncer=true`).
static POOLER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The pools opened in PgBouncer mode, for [`finish`].
static POOLS: std::sync::Mutex<Vec<PgPool>> = std::sync::Mutex::new(Vec::new());

/// Waits until the last statement's transaction is committed (PgBouncer mode: sqlx returns a
/// connection to its pool, and so runs our commit, in the background) and closes the pools.
/// The process must call this before it exits; without PgBouncer there is nothing to do.
pub async fn finish() {
    let pools = match POOLS.lock() {
        Ok(mut p) => std::mem::take(&mut *p),
        Err(_) => return,
    };
    for pool in pools {
        if pool.size() > 0 {
            // The pool has one connection: acquiring it waits until the one in flight has been
            // returned, i.e. committed. The fresh transaction it comes with is empty.
            if let Ok(conn) = pool.acquire().await {
                let _ = sqlx::Connection::close(conn.detach()).await;
            }
        }
        pool.close().await;
    }
}

/// Pool hooks for PgBouncer transaction pooling (see the module doc): each use of a pooled
/// connection is one transaction. sqlx's own transaction manager begins it, so a
/// `pool.begin()` inside becomes a savepoint and sqlx's bookkeeping stays right.
fn transaction_pooling(options: PgPoolOptions) -> PgPoolOptions {
    use sqlx::TransactionManager;
    use sqlx::postgres::PgTransactionManager;
    options
        // The pool's own liveness ping would be one more round trip per statement.
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move { PgTransactionManager::begin(conn, None).await })
        })
        .before_acquire(|conn, _| {
            Box::pin(async move {
                PgTransactionManager::begin(conn, None).await?;
                Ok(true)
            })
        })
        .after_release(|conn, _| {
            Box::pin(async move {
                if PgTransactionManager::get_transaction_depth(conn) == 0 {
                    return Ok(true);
                }
                // Fails when the transaction failed: the connection is closed instead, and
                // PgBouncer drops a server connection whose client left mid-transaction.
                if sqlx::Executor::execute(&mut *conn, "DEALLOCATE ALL")
                    .await
                    .is_err()
                {
                    return Ok(false);
                }
                PgTransactionManager::commit(conn).await?;
                Ok(true)
            })
        })
}

/// How long the first connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The versions recorded as successfully applied (empty when the table does not exist).
pub async fn applied_versions(pool: &PgPool) -> anyhow::Result<BTreeSet<i64>> {
    let mut conn = pool.acquire().await?;
    applied_versions_on(&mut conn).await
}

async fn applied_versions_on(conn: &mut sqlx::PgConnection) -> anyhow::Result<BTreeSet<i64>> {
    // One round trip where a run spends its time: the simple query protocol (no Parse, Describe
    // and Bind of a prepared statement) and no existence check first; a database without the
    // table says so with SQLSTATE 42P01, which means no migration was applied yet.
    let rows = sqlx::raw_sql("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&mut *conn)
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P01") => {
            // Behind PgBouncer the failed statement aborted the pinned transaction: begin it
            // anew so that the migrations (or the caller's next statement) can run in it.
            restart_pinned(conn).await?;
            return Ok(BTreeSet::new());
        }
        Err(e) => return Err(e.into()),
    };
    let mut versions = BTreeSet::new();
    for row in rows {
        versions.insert(sqlx::Row::try_get::<i64, _>(&row, 0)?);
    }
    Ok(versions)
}

/// Rolls back the pinned transaction a failed statement aborted and begins a new one (see
/// [`begin_pinned`]); without PgBouncer, or outside a transaction, it does nothing.
async fn restart_pinned(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    use sqlx::TransactionManager;
    use sqlx::postgres::PgTransactionManager;
    if POOLER.load(std::sync::atomic::Ordering::Relaxed)
        && PgTransactionManager::get_transaction_depth(conn) > 0
    {
        PgTransactionManager::rollback(conn).await?;
        PgTransactionManager::begin(conn, None).await?;
    }
    Ok(())
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

/// The oldest client version that understands the schema, as the database records it
/// (migration 016; `None` before it).
pub async fn min_client_version(conn: &mut sqlx::PgConnection) -> anyhow::Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT min_client_version FROM schema_client_minimum")
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Records, after migrating, that the schema needs at least this build's
/// [`SCHEMA_MIN_CLIENT`](crate::domain::client_version::SCHEMA_MIN_CLIENT); the row is locked
/// so that two clients migrating at once cannot lower it.
async fn raise_min_client_version(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let stored: Option<String> =
        sqlx::query_scalar("SELECT min_client_version FROM schema_client_minimum FOR UPDATE")
            .fetch_optional(&mut *tx)
            .await?;
    let ours = crate::domain::client_version::SCHEMA_MIN_CLIENT;
    if let Some(new) = crate::domain::client_version::raised_minimum(stored.as_deref(), ours) {
        sqlx::query(
            "INSERT INTO schema_client_minimum (min_client_version) VALUES ($1) \
             ON CONFLICT (only_row) DO UPDATE SET min_client_version = EXCLUDED.min_client_version, \
             updated_at = now()",
        )
        .bind(new)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The oldest PostgreSQL server the schema works on (`server_version_num`).
const MIN_SERVER_VERSION: i32 = 150_000;

/// The transaction-level advisory lock that serialises migrations behind PgBouncer.
const MIGRATION_LOCK_KEY: i64 = 0x5246_0000_0008;

/// Applies every missing migration (`restic-fleet db migrate`).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    migrate_on(&mut conn).await
}

async fn migrate_on(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    // Row-level security reaches through the seed's views only as security-invoker views
    // (migration 006), which PostgreSQL has from version 15 on.
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(&mut *conn)
        .await?;
    if version < MIN_SERVER_VERSION {
        return Err(Failure::failed(format!(
            "the database server is PostgreSQL {}.{}, but restic-fleet needs 15 or newer (its \
             row-level security relies on security-invoker views); upgrade the server, e.g. \
             with pg_upgradecluster",
            version / 10000,
            version % 10000
        ))
        .into());
    }
    let mut migrator = sqlx::migrate!("./migrations");
    // A newer client may already have applied migrations this one does not know: keep working.
    migrator.set_ignore_missing(true);
    let result = if POOLER.load(std::sync::atomic::Ordering::Relaxed) {
        // Behind PgBouncer the connection's use is one transaction (see `transaction_pooling`):
        // sqlx's session advisory lock would be released before that transaction commits, and
        // a second client would then migrate again over tables it cannot see yet. A
        // transaction-level lock is held until the commit instead.
        migrator.set_locking(false);
        match sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *conn)
            .await
        {
            Ok(_) => migrator.run(&mut *conn).await,
            Err(e) => Err(sqlx::migrate::MigrateError::Execute(e)),
        }
    } else {
        migrator.run(&mut *conn).await
    };
    match result {
        Ok(()) => raise_min_client_version(conn).await,
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
                let applied = applied_versions_on(conn).await.unwrap_or_default();
                let missing: Vec<String> = MIGRATOR
                    .iter()
                    .map(|m| m.version)
                    .filter(|v| !applied.contains(v))
                    .map(|v| v.to_string())
                    .collect();
                let current = applied.last().copied().unwrap_or(0);
                // Migrations alter the existing tables, which only their owner (or a superuser)
                // may do: backup_admin's grants are not enough unless it owns them.
                let owner: Option<String> = sqlx::query_scalar(
                    "SELECT tableowner::text FROM pg_tables \
                     WHERE schemaname = 'public' AND tablename = 'backup_jobs'",
                )
                .fetch_optional(&mut *conn)
                .await
                .ok()
                .flatten();
                let who = match owner {
                    Some(o) => format!("the role that owns the tables, {o:?}, or a superuser"),
                    None => "the role that owns the tables, or a superuser".to_string(),
                };
                Err(Failure::failed(format!(
                    "the database schema is at version {current} with migration(s) {} missing, but \
                     this client needs version {}, and this database role may not change the \
                     schema; apply it with `restic-fleet db migrate --database-url URL` connected \
                     as {who}",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pgbouncer_flag_is_taken_out_of_the_url() {
        let (u, p) = split_pooler("postgres://u:pw@h:6432/db?pgbouncer=true").unwrap();
        assert_eq!((u.as_str(), p), ("postgres://u:pw@h:6432/db", true));
        let (u, p) =
            split_pooler("postgres://h/db?sslmode=disable&pgbouncer=1&application_name=x").unwrap();
        assert_eq!(
            (u.as_str(), p),
            ("postgres://h/db?sslmode=disable&application_name=x", true)
        );
        let (u, p) = split_pooler("postgres://h/db?pgbouncer=false").unwrap();
        assert_eq!((u.as_str(), p), ("postgres://h/db", false));
        assert_eq!(
            split_pooler("postgres://h/db").unwrap(),
            ("postgres://h/db".to_string(), false)
        );
        let e = split_pooler("postgres://u:secret@h/db?pgbouncer=maybe").unwrap_err();
        assert!(e.to_string().contains("pgbouncer=\"maybe\""), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        let (opts, pooler) = parse_options("postgres://h/db?pgbouncer=true").unwrap();
        assert!(pooler);
        assert_eq!(opts.get_database(), Some("db"));
    }
}
