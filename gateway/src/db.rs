//! The database: SQLite (embedded default) or PostgreSQL (production, several replicas), behind
//! one `sqlx::AnyPool` and one set of SQL texts. Where the two differ (locking, transactions),
//! the difference is here and in `jobs`, nowhere else.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod deferred;

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;
/// One connection, to read through: a snapshot transaction (`&mut *tx`) or a pooled connection.
pub type Conn = sqlx::AnyConnection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Db {
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(sqlx::Error::Configuration(
                format!("unsupported database url `{url}`: use sqlite://... or postgres://...")
                    .into(),
            ));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = match backend {
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .connect_with(options)
                    .await?
            }
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(8)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets readers run beside the one writer; writers wait for each
                            // other instead of failing.
                            conn.execute("pragma journal_mode = wal").await?;
                            conn.execute("pragma busy_timeout = 10000").await?;
                            conn.execute("pragma synchronous = full").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
        };
        Ok(Self { pool, backend })
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await,
        }
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once (`begin immediate`):
    /// a deferred transaction that reads before writing can fail with "database is locked"
    /// when another writer got in between.
    /// Whether the database answers (the health check).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("select 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// The database's size on disk, in bytes (SQLite: its pages, not its write-ahead log).
    pub async fn size_bytes(&self) -> Result<i64, sqlx::Error> {
        let sql = match self.backend {
            Backend::Postgres => "select pg_database_size(current_database())",
            Backend::Sqlite => {
                "select page_count * page_size from pragma_page_count(), pragma_page_size()"
            }
        };
        sqlx::query_scalar(sql).fetch_one(&self.pool).await
    }

    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("begin immediate").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Begins a read-only transaction that sees one snapshot of the database for all its
    /// queries: a view assembled from several tables (an order with its shipments and scans)
    /// never shows a state that was never committed as a whole. SQLite in WAL mode holds its
    /// snapshot from the first read of a deferred transaction; PostgreSQL needs
    /// `repeatable read`.
    pub async fn snapshot(&self) -> Result<Tx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("begin deferred").await,
            Backend::Postgres => {
                self.pool
                    .begin_with("begin isolation level repeatable read read only")
                    .await
            }
        }
    }
}

/// Marks a point in `tx` that [`rollback_to_savepoint`] undoes to: one part of a transaction
/// that holds others (the ingest writer's batch) refused without undoing theirs. One at a time.
pub async fn savepoint(tx: &mut Tx) -> Result<(), sqlx::Error> {
    tx.execute("savepoint daifa_part").await.map(|_| ())
}

/// Keeps what was done since [`savepoint`].
pub async fn release_savepoint(tx: &mut Tx) -> Result<(), sqlx::Error> {
    tx.execute("release savepoint daifa_part").await.map(|_| ())
}

/// Undoes what was done since [`savepoint`], and drops the savepoint.
pub async fn rollback_to_savepoint(tx: &mut Tx) -> Result<(), sqlx::Error> {
    tx.execute("rollback to savepoint daifa_part").await?;
    release_savepoint(tx).await
}

/// A new id: a prefix naming the entity and a time-ordered UUID ("ord_0190b...").
/// Creates an empty database `name` on a PostgreSQL server (a scratch database for a
/// benchmark); its URL.
pub async fn create_database(server_url: &str, name: &str) -> Result<String, sqlx::Error> {
    let admin = sqlx::PgPool::connect(server_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
        .execute(&admin)
        .await?;
    admin.close().await;
    let base = server_url.rsplit_once('/').map_or(server_url, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

/// Drops a database made by [`create_database`].
pub async fn drop_database(server_url: &str, name: &str) -> Result<(), sqlx::Error> {
    let admin = sqlx::PgPool::connect(server_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "drop database if exists {name} with (force)"
    )))
    .execute(&admin)
    .await?;
    admin.close().await;
    Ok(())
}

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// `$first, $first+1, ...` for `n` values: the Any driver binds no arrays.
/// Whether a transaction is on SQLite (where a write transaction holds the one write lock).
pub fn is_sqlite(tx: &Tx) -> bool {
    tx.backend_name().eq_ignore_ascii_case("sqlite")
}

pub fn placeholders(first: usize, n: usize) -> String {
    (0..n)
        .map(|i| format!("${}", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Whether JSON text escapes a NUL character (`\u0000`, not the text `\\u0000`: an escaped
/// backslash). PostgreSQL cannot store a NUL in a text column, so text holding one is refused
/// for what it is, on both databases, before it reaches a transaction.
pub fn escapes_nul(json: &str) -> bool {
    json.match_indices("u0000").any(|(at, _)| {
        let backslashes = json[..at].bytes().rev().take_while(|&b| b == b'\\').count();
        backslashes % 2 == 1
    })
}

#[cfg(test)]
mod tests {
    use super::escapes_nul;

    #[test]
    fn a_nul_is_told_from_the_text_of_its_escape() {
        assert!(escapes_nul(r#"{"name":"a\u0000b"}"#));
        assert!(escapes_nul(r#"{"name":"\\\u0000"}"#));
        assert!(!escapes_nul(r#"{"name":"a\\u0000b"}"#));
        assert!(!escapes_nul(r#"{"name":"u0000"}"#));
    }
}
