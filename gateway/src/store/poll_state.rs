//! Where each polled connection's polling stands: its cursor, when it is next due, the lease of
//! the process polling it, and how its last polls went. This module owns the `poll_state`
//! table; the due-poll claim reads the connections and their plugin versions in the same
//! locked statement.

use crate::db::{Backend, Db, ms, now_ms};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};
use std::time::Duration;

/// Starts polling every enabled connection whose pinned version polls and that is not polled
/// yet: its first poll is one interval away (its manifest's, else `interval`).
pub async fn enrol(db: &Db, interval: Duration) -> sqlx::Result<()> {
    sqlx::query(
        "insert into poll_state (connection_id, since_ms, next_poll_at_ms, consecutive_failures) \
         select c.id, $1, $1 + coalesce(p.poll_interval_ms, $2), 0 \
         from connections c join plugin_packages p on p.name = c.plugin and p.version = c.plugin_version \
         where c.enabled = 1 and p.polling = 1 \
         on conflict (connection_id) do nothing",
    )
    .bind(now_ms())
    .bind(ms(interval))
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// A connection's poll a process holds.
pub struct Claim {
    pub connection_id: String,
    pub cursor: Option<String>,
    pub since_ms: i64,
    pub failures: i64,
    /// The manifest's interval.
    pub interval: Option<Duration>,
}

/// The connection_ids of the polls that are due: enabled, still polling, not held by a live lease.
const DUE: &str = "from poll_state s join connections c on c.id = s.connection_id \
                   join plugin_packages p on p.name = c.plugin and p.version = c.plugin_version \
                   where c.enabled = 1 and p.polling = 1 and s.next_poll_at_ms <= $3 \
                   and (s.locked_until_ms is null or s.locked_until_ms < $3)";

/// Takes the poll due first for `holder`, under a lease of `lease` (`for update skip locked`
/// on PostgreSQL; one statement holds SQLite's single write lock).
pub async fn claim(db: &Db, holder: &str, lease: Duration) -> anyhow::Result<Option<Claim>> {
    let now = now_ms();
    let lock = match db.backend {
        Backend::Postgres => "for update of s skip locked",
        // One statement runs under SQLite's single write lock.
        Backend::Sqlite => "",
    };
    let row = sqlx::query(AssertSqlSafe(format!(
        "update poll_state set locked_by = $1, locked_until_ms = $2, last_polled_at_ms = $3 \
         where connection_id = (select s.connection_id {DUE} order by s.next_poll_at_ms limit 1 {lock}) \
         returning connection_id, cursor, since_ms, consecutive_failures, \
                   (select poll_interval_ms from plugin_packages p join connections c on p.name = c.plugin and p.version = c.plugin_version \
                    where c.id = poll_state.connection_id) as interval_ms"
    )))
    .bind(holder)
    .bind(now + ms(lease))
    .bind(now)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| {
        let interval: Option<i64> = r.try_get("interval_ms")?;
        Ok(Claim {
            connection_id: r.try_get("connection_id")?,
            cursor: r.try_get("cursor")?,
            since_ms: r.try_get("since_ms")?,
            failures: r.try_get("consecutive_failures")?,
            interval: interval.map(|i| Duration::from_millis(u64::try_from(i).unwrap_or(0))),
        })
    })
    .transpose()
}

/// Saves a held poll's cursor and renews its lease: a long poll keeps its connection. Nothing
/// when `holder` no longer holds it.
pub async fn save_cursor(
    db: &Db,
    holder: &str,
    connection_id: &str,
    cursor: Option<&str>,
    lease: Duration,
) -> sqlx::Result<()> {
    sqlx::query(
        "update poll_state set cursor = $1, locked_until_ms = $2 where connection_id = $3 and locked_by = $4",
    )
    .bind(cursor)
    .bind(now_ms() + ms(lease))
    .bind(connection_id)
    .bind(holder)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// How a held poll went, as [`release`] records it.
pub struct Outcome<'a> {
    /// When the next poll is due.
    pub next_poll_at_ms: i64,
    pub consecutive_failures: i64,
    /// Why the poll stopped early; none when it got through.
    pub error: Option<&'a str>,
    /// The raw record of its last call.
    pub last_raw_request_id: Option<&'a str>,
    pub now_ms: i64,
}

/// Releases a held poll and records how it went. Nothing when `holder` no longer holds it.
pub async fn release(
    db: &Db,
    holder: &str,
    connection_id: &str,
    outcome: &Outcome<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "update poll_state set locked_by = null, locked_until_ms = null, next_poll_at_ms = $1, consecutive_failures = $2, \
         last_error = $3, last_raw_request_id = coalesce($4, last_raw_request_id), \
         last_success_at_ms = case when $3 is null then $5 else last_success_at_ms end \
         where connection_id = $6 and locked_by = $7",
    )
    .bind(outcome.next_poll_at_ms)
    .bind(outcome.consecutive_failures)
    .bind(outcome.error)
    .bind(outcome.last_raw_request_id)
    .bind(outcome.now_ms)
    .bind(connection_id)
    .bind(holder)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Whether a plugin version is installed and polls.
pub async fn version_polls(db: &Db, plugin: &str, version: &str) -> sqlx::Result<bool> {
    let polling: Option<i64> =
        sqlx::query_scalar("select polling from plugin_packages where name = $1 and version = $2")
            .bind(plugin)
            .bind(version)
            .fetch_optional(&db.pool)
            .await?;
    Ok(polling == Some(1))
}

/// A connection's polling state (as the admin API shows it too).
#[derive(Debug, Default, Serialize)]
pub struct PollState {
    pub cursor: Option<String>,
    pub next_poll_at_ms: Option<i64>,
    pub last_polled_at_ms: Option<i64>,
    pub last_success_at_ms: Option<i64>,
    pub consecutive_failures: i64,
    pub last_error: Option<String>,
    pub last_raw_request_id: Option<String>,
}

/// A connection's polling state; none before it was enrolled.
pub async fn of_connection(db: &Db, connection_id: &str) -> sqlx::Result<Option<PollState>> {
    let row = sqlx::query(
        "select cursor, next_poll_at_ms, last_polled_at_ms, last_success_at_ms, consecutive_failures, last_error, last_raw_request_id \
         from poll_state where connection_id = $1",
    )
    .bind(connection_id)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| {
        Ok(PollState {
            cursor: r.try_get("cursor")?,
            next_poll_at_ms: r.try_get("next_poll_at_ms")?,
            last_polled_at_ms: r.try_get("last_polled_at_ms")?,
            last_success_at_ms: r.try_get("last_success_at_ms")?,
            consecutive_failures: r.try_get("consecutive_failures")?,
            last_error: r.try_get("last_error")?,
            last_raw_request_id: r.try_get("last_raw_request_id")?,
        })
    })
    .transpose()
}

/// Makes a connection's poll due now.
pub async fn due_now(db: &Db, connection_id: &str) -> sqlx::Result<()> {
    sqlx::query("update poll_state set next_poll_at_ms = $1 where connection_id = $2")
        .bind(now_ms())
        .bind(connection_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}
