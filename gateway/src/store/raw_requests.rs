//! Every request the gateway received or fetched, stored before anything is done with it, and
//! the platforms' delivery ids seen per connection. A raw request's status moves from
//! `received` to what processing it came to; once applied (`accepted`, `duplicate`) it stays so.
//! This module owns the `raw_requests` and `deliveries` tables.

use crate::db::deferred::{self, Bind};
use crate::db::{Backend, Conn, Db, Tx, ms, now_ms};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::time::Duration;

/// What became of a stored request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawStatus {
    /// Stored, not yet processed (or processing failed in a way the sender retries); the
    /// sweeper processes it again once it is stale.
    Received,
    Accepted,
    Duplicate,
    Rejected,
    Failed,
}

impl RawStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// Where a stored request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `POST /hooks/{connection}`.
    Webhook,
    /// What polling fetched through the plugin.
    Poll,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Poll => "poll",
        }
    }
}

/// A request to store, as it came in.
pub struct NewRawRequest<'a> {
    pub id: &'a str,
    pub connection_name: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    pub origin: Origin,
}

/// Stores a request, `received`: on its own (`&db.pool`), or in a transaction.
pub async fn insert<'e>(
    exec: impl sqlx::Executor<'e, Database = sqlx::Any>,
    request: &NewRawRequest<'_>,
) -> anyhow::Result<()> {
    insert_row(exec, request, &Outcome::default()).await
}

/// Stores a request processed before it was stored (the ingest writer's: one statement
/// instead of a `received` row and its update): applied, in the transaction that applied it.
pub async fn insert_applied(
    tx: &mut Tx,
    request: &NewRawRequest<'_>,
    applied: &Applied<'_>,
) -> anyhow::Result<()> {
    let outcome = Outcome {
        status: Some(applied.status),
        status_code: Some(200),
        reason: None,
        plugin_version: Some(applied.plugin_version),
        delivery_id: applied.delivery_id,
        topic: applied.topic,
        order_id: applied.order_id,
        connection_id: Some(applied.connection_id),
    };
    // Nothing reads a raw request back in the transaction that stores it: it may wait.
    deferred::insert(tx, &RAW, vec![raw_row(request, &outcome)?]).await?;
    Ok(())
}

/// Stores a request processed before it was stored and not applied (refused, or failed in a
/// way its sender retries), with its answer, in the transaction of the batch it came in (it
/// may wait for `deferred::flush`).
pub async fn insert_answered(
    tx: &mut Tx,
    request: &NewRawRequest<'_>,
    status: RawStatus,
    status_code: u16,
    reason: Option<&str>,
    plugin_version: Option<&str>,
) -> anyhow::Result<()> {
    let outcome = Outcome {
        status: Some(status),
        status_code: Some(status_code),
        reason,
        plugin_version,
        ..Outcome::default()
    };
    deferred::insert(tx, &RAW, vec![raw_row(request, &outcome)?]).await?;
    Ok(())
}

/// What is known of a request when it is stored; nothing for one just received.
#[derive(Default)]
struct Outcome<'a> {
    status: Option<RawStatus>,
    status_code: Option<u16>,
    reason: Option<&'a str>,
    plugin_version: Option<&'a str>,
    delivery_id: Option<&'a str>,
    topic: Option<&'a str>,
    order_id: Option<&'a str>,
    connection_id: Option<&'a str>,
}

static RAW: deferred::Insert = deferred::Insert {
    head: "insert into raw_requests (id, connection_name, method, path, headers, body, received_at_ms, status, origin, \
           status_code, reason, plugin_version, delivery_id, topic, order_id, connection_id)",
    columns: 16,
    tail: "",
};

fn raw_row(request: &NewRawRequest<'_>, outcome: &Outcome<'_>) -> anyhow::Result<Vec<Bind>> {
    Ok(vec![
        request.id.into(),
        request.connection_name.into(),
        request.method.into(),
        request.path.into(),
        serde_json::to_string(request.headers)?.into(),
        Bind::Bytes(request.body.to_vec()),
        now_ms().into(),
        outcome
            .status
            .unwrap_or(RawStatus::Received)
            .as_str()
            .into(),
        request.origin.as_str().into(),
        outcome.status_code.map(i64::from).into(),
        outcome.reason.into(),
        outcome.plugin_version.into(),
        outcome.delivery_id.into(),
        outcome.topic.into(),
        outcome.order_id.into(),
        outcome.connection_id.into(),
    ])
}

async fn insert_row<'e>(
    exec: impl sqlx::Executor<'e, Database = sqlx::Any>,
    request: &NewRawRequest<'_>,
    outcome: &Outcome<'_>,
) -> anyhow::Result<()> {
    let sql = deferred::one_row(&RAW);
    deferred::bind_all(sqlx::query(AssertSqlSafe(sql)), raw_row(request, outcome)?)
        .execute(exec)
        .await?;
    Ok(())
}

/// A stored request read back to be processed again.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub id: String,
    pub connection_name: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub received_at_ms: i64,
    /// The sweeper's attempts at it, this one included.
    pub attempts: i64,
}

const STORED_COLUMNS: &str =
    "id, connection_name, method, path, headers, body, received_at_ms, attempts";

fn stored_from_row(r: &AnyRow) -> anyhow::Result<RawRequest> {
    Ok(RawRequest {
        id: r.try_get("id")?,
        connection_name: r.try_get("connection_name")?,
        method: r.try_get("method")?,
        path: r.try_get("path")?,
        headers: serde_json::from_str(&r.try_get::<String, _>("headers")?)?,
        body: r.try_get("body")?,
        received_at_ms: r.try_get("received_at_ms")?,
        attempts: r.try_get("attempts")?,
    })
}

/// A connection's stored webhooks received since `since_ms`, oldest first, at most `limit`.
pub async fn webhooks_since(
    db: &Db,
    connection_name: &str,
    since_ms: i64,
    limit: i64,
) -> anyhow::Result<Vec<RawRequest>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select {STORED_COLUMNS} from raw_requests \
         where connection_name = $1 and origin = 'webhook' and received_at_ms >= $2 order by received_at_ms, id limit $3"
    )))
    .bind(connection_name)
    .bind(since_ms)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(stored_from_row).collect()
}

/// Takes the oldest stale webhook whose next attempt is due: still `received` `stale_after`
/// after it was stored. Taking it counts an attempt and holds it for `stale_after`, the time an
/// attempt may take, so that no other process takes it meanwhile (`for update skip locked` on
/// PostgreSQL; one statement holds SQLite's single write lock).
pub async fn claim_stale(db: &Db, stale_after: Duration) -> anyhow::Result<Option<RawRequest>> {
    let now = now_ms();
    let lock = match db.backend {
        Backend::Postgres => "for update skip locked",
        Backend::Sqlite => "",
    };
    let row = sqlx::query(AssertSqlSafe(format!(
        "update raw_requests set attempts = attempts + 1, next_attempt_at_ms = $1 \
         where id = (select id from raw_requests \
                     where status = 'received' and origin = 'webhook' and received_at_ms <= $2 \
                     and (next_attempt_at_ms is null or next_attempt_at_ms <= $3) \
                     order by received_at_ms limit 1 {lock}) \
         returning {STORED_COLUMNS}"
    )))
    .bind(now + ms(stale_after))
    .bind(now - ms(stale_after))
    .bind(now)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(stored_from_row).transpose()
}

/// Holds a stored webhook for `hold`, as [`claim_stale`] does, if it was not applied
/// (`received`, `failed`, `rejected`). None when there is no such webhook.
pub async fn hold_unapplied_webhook(
    db: &Db,
    id: &str,
    hold: Duration,
) -> anyhow::Result<Option<RawRequest>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "update raw_requests set next_attempt_at_ms = $1 \
         where id = $2 and origin = 'webhook' and status in ('received', 'failed', 'rejected') \
         returning {STORED_COLUMNS}"
    )))
    .bind(now_ms() + ms(hold))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(stored_from_row).transpose()
}

/// A stored request's status and origin.
pub async fn status_and_origin(db: &Db, id: &str) -> sqlx::Result<Option<(String, String)>> {
    let row = sqlx::query("select status, origin from raw_requests where id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| Ok((r.try_get("status")?, r.try_get("origin")?)))
        .transpose()
}

/// Sets a stale webhook's next attempt after a failed one, with the reason, unless another
/// attempt took it since (its attempts are no longer `attempts`).
pub async fn retry_stale_at(
    db: &Db,
    id: &str,
    attempts: i64,
    at_ms: i64,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "update raw_requests set next_attempt_at_ms = $1, reason = $2 \
         where id = $3 and status = 'received' and attempts = $4",
    )
    .bind(at_ms)
    .bind(reason)
    .bind(id)
    .bind(attempts)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Moves a stale webhook from `received` to `failed`, with the reason. False when another
/// attempt took it since (or applied it).
pub async fn fail_stale(tx: &mut Tx, id: &str, attempts: i64, reason: &str) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "update raw_requests set status = $1, reason = $2, next_attempt_at_ms = null \
         where id = $3 and status = 'received' and attempts = $4",
    )
    .bind(RawStatus::Failed.as_str())
    .bind(reason)
    .bind(id)
    .bind(attempts)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Moves the polls' records still `received` `stale_after` after they were stored to
/// `failed`. Returns how many.
pub async fn fail_stale_polls(db: &Db, stale_after: Duration) -> sqlx::Result<u64> {
    let r = sqlx::query(
        "update raw_requests set status = $1, reason = $2 \
         where status = 'received' and origin = 'poll' and received_at_ms <= $3",
    )
    .bind(RawStatus::Failed.as_str())
    .bind(
        "not applied (the gateway stopped or its database failed): the next poll fetches it again",
    )
    .bind(now_ms() - ms(stale_after))
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected())
}

/// How many requests are stale: still `received` `stale_after` after they were stored.
pub async fn count_stale(db: &Db, stale_after: Duration) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select count(*) from raw_requests where status = 'received' and received_at_ms <= $1",
    )
    .bind(now_ms() - ms(stale_after))
    .fetch_one(&db.pool)
    .await
}

/// The status a stored request has now.
pub async fn status_of(db: &Db, id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select status from raw_requests where id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await
}

/// Sets a stored request's reason, its status as it is.
pub async fn set_reason(db: &Db, id: &str, reason: &str) -> sqlx::Result<()> {
    sqlx::query("update raw_requests set reason = $1 where id = $2")
        .bind(reason)
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Marks a poll's record `failed`, with the reason and the plugin version that made the call.
pub async fn fail_poll(db: &Db, id: &str, reason: &str, plugin_version: &str) -> sqlx::Result<()> {
    sqlx::query(
        "update raw_requests set status = $1, reason = $2, plugin_version = $3 where id = $4",
    )
    .bind(RawStatus::Failed.as_str())
    .bind(reason)
    .bind(plugin_version)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Records what processing a stored request came to (a refusal, a failure), unless it was
/// applied: what was applied stays so, and a late record of an earlier run's refusal does not
/// undo it.
pub async fn record_outcome<'e>(
    exec: impl sqlx::Executor<'e, Database = sqlx::Any>,
    id: &str,
    status: RawStatus,
    status_code: u16,
    reason: Option<&str>,
    plugin_version: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "update raw_requests set status = $1, status_code = $2, reason = $3, plugin_version = $4 \
                 where id = $5 and status not in ('accepted', 'duplicate')",
    )
    .bind(status.as_str())
    .bind(i64::from(status_code))
    .bind(reason)
    .bind(plugin_version)
    .bind(id)
    .execute(exec)
    .await?;
    Ok(())
}

/// A stored request applied: what [`mark_applied`] records on it.
pub struct Applied<'a> {
    pub raw_id: &'a str,
    /// `accepted`, or `duplicate` of a delivery applied before.
    pub status: RawStatus,
    pub delivery_id: Option<&'a str>,
    pub topic: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub connection_id: &'a str,
    /// The version of the connection's plugin that parsed it.
    pub plugin_version: &'a str,
}

/// Marks a stored request applied; false when it was applied before (a request is applied
/// once).
pub async fn mark_applied(tx: &mut Tx, applied: &Applied<'_>) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "update raw_requests set status = $1, status_code = 200, delivery_id = $2, topic = $3, order_id = $4, connection_id = $5, \
         plugin_version = $6 where id = $7 and status not in ('accepted', 'duplicate')",
    )
    .bind(applied.status.as_str())
    .bind(applied.delivery_id)
    .bind(applied.topic)
    .bind(applied.order_id)
    .bind(applied.connection_id)
    .bind(applied.plugin_version)
    .bind(applied.raw_id)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A platform delivery id to record: the connection, the delivery id, the raw request.
pub type DeliveryClaim<'a> = (&'a str, &'a str, &'a str);

/// Records the delivery ids of several requests at once (one statement): the claims that were
/// new, each delivery id's first in `claims` (a delivery id seen before has none).
pub async fn claim_deliveries(
    tx: &mut Tx,
    claims: &[DeliveryClaim<'_>],
) -> sqlx::Result<Vec<(String, String, String)>> {
    let mut new = Vec::new();
    // Below the databases' bind limits whatever `ingest.batch_max` is.
    for chunk in claims.chunks(1_000) {
        let values = (0..chunk.len())
            .map(|i| format!("({})", crate::db::placeholders(1 + 3 * i, 3)))
            .collect::<Vec<_>>()
            .join(", ");
        let mut query = sqlx::query_as::<_, (String, String, String)>(AssertSqlSafe(format!(
            "insert into deliveries (connection_id, delivery_id, raw_request_id) values {values} \
             on conflict (connection_id, delivery_id) do nothing returning connection_id, delivery_id, raw_request_id"
        )));
        for (connection_id, delivery_id, raw_id) in chunk {
            query = query.bind(*connection_id).bind(*delivery_id).bind(*raw_id);
        }
        new.extend(query.fetch_all(&mut **tx).await?);
    }
    Ok(new)
}

/// Forgets the claim of a delivery id by a request that was refused before it was applied:
/// its redelivery is judged again, as if it had never come.
pub async fn release_delivery(
    tx: &mut Tx,
    connection_id: &str,
    delivery_id: &str,
    raw_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "delete from deliveries where connection_id = $1 and delivery_id = $2 and raw_request_id = $3",
    )
    .bind(connection_id)
    .bind(delivery_id)
    .bind(raw_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a platform's delivery id for a connection; false when it was seen before.
pub async fn claim_delivery(
    tx: &mut Tx,
    connection_id: &str,
    delivery_id: &str,
    raw_id: &str,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "insert into deliveries (connection_id, delivery_id, raw_request_id) values ($1, $2, $3) \
         on conflict (connection_id, delivery_id) do nothing",
    )
    .bind(connection_id)
    .bind(delivery_id)
    .bind(raw_id)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A stored request as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct RawRequestView {
    pub id: String,
    pub connection_name: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The body as text when it is UTF-8, else base64 in `body_base64`.
    pub body: Option<String>,
    pub body_base64: Option<String>,
    pub received_at_ms: i64,
    pub status: String,
    pub status_code: Option<i64>,
    pub reason: Option<String>,
    /// The plugin version that handled it.
    pub plugin_version: Option<String>,
    pub delivery_id: Option<String>,
    pub topic: Option<String>,
    pub order_id: Option<String>,
    /// The sweeper's attempts at processing it again, and when it may take it next.
    pub attempts: i64,
    pub next_attempt_at_ms: Option<i64>,
}

const RAW_COLUMNS: &str = "id, connection_name, method, path, headers, body, received_at_ms, status, status_code, reason, delivery_id, topic, order_id, plugin_version, attempts, next_attempt_at_ms";

fn raw_from_row(r: &AnyRow) -> anyhow::Result<RawRequestView> {
    use base64::Engine;
    let body: Vec<u8> = r.try_get("body")?;
    let (text, b64) = match String::from_utf8(body) {
        Ok(s) => (Some(s), None),
        Err(e) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes())),
        ),
    };
    Ok(RawRequestView {
        id: r.try_get("id")?,
        connection_name: r.try_get("connection_name")?,
        method: r.try_get("method")?,
        path: r.try_get("path")?,
        headers: serde_json::from_str(&r.try_get::<String, _>("headers")?)?,
        body: text,
        body_base64: b64,
        received_at_ms: r.try_get("received_at_ms")?,
        status: r.try_get("status")?,
        status_code: r.try_get("status_code")?,
        plugin_version: r.try_get("plugin_version")?,
        reason: r.try_get("reason")?,
        delivery_id: r.try_get("delivery_id")?,
        topic: r.try_get("topic")?,
        order_id: r.try_get("order_id")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at_ms: r.try_get("next_attempt_at_ms")?,
    })
}

/// The stored requests that concern an order, oldest first.
pub async fn for_order(conn: &mut Conn, order_id: &str) -> anyhow::Result<Vec<RawRequestView>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select {RAW_COLUMNS} from raw_requests where order_id = $1 order by received_at_ms, id"
    )))
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(raw_from_row).collect()
}

/// Stored requests, newest first, optionally of one connection and one status.
pub async fn list(
    db: &Db,
    connection: Option<&str>,
    status: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<RawRequestView>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select {RAW_COLUMNS} from raw_requests where ($1 = '' or connection_name = $1) and ($2 = '' or status = $2) \
         order by received_at_ms desc, id desc limit $3"
    )))
    .bind(connection.unwrap_or(""))
    .bind(status.unwrap_or(""))
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(raw_from_row).collect()
}
