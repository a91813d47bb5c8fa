//! Holds: an order waiting for the operator, with why, and how the wait ended (released,
//! resolved, cancelled, superseded by a later copy of the order). This module owns the `holds`
//! table.

use crate::db::{Conn, Db, Tx, new_id, now_ms};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

/// A hold as the API shows it.
#[derive(Debug, Serialize)]
pub struct HoldView {
    pub id: String,
    pub order_id: String,
    pub kind: String,
    pub reason: String,
    pub status: String,
    pub opened_at_ms: i64,
    pub contact_due_at_ms: Option<i64>,
    /// An open stock-out whose customer-contact time has passed.
    pub overdue: bool,
    pub resolved_at_ms: Option<i64>,
    pub resolved_by: Option<String>,
    pub resolution: Option<Value>,
}

const COLUMNS: &str = "id, order_id, kind, reason, status, opened_at_ms, contact_due_at_ms, resolved_at_ms, resolved_by, resolution";

fn from_row(r: &AnyRow) -> anyhow::Result<HoldView> {
    let status: String = r.try_get("status")?;
    let due: Option<i64> = r.try_get("contact_due_at_ms")?;
    Ok(HoldView {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        kind: r.try_get("kind")?,
        reason: r.try_get("reason")?,
        overdue: status == "open" && due.is_some_and(|d| d < now_ms()),
        status,
        opened_at_ms: r.try_get("opened_at_ms")?,
        contact_due_at_ms: due,
        resolved_at_ms: r.try_get("resolved_at_ms")?,
        resolved_by: r.try_get("resolved_by")?,
        resolution: r
            .try_get::<Option<String>, _>("resolution")?
            .and_then(|s| serde_json::from_str(&s).ok()),
    })
}

/// The open hold of `kind` of an order, if there is one.
pub async fn open_of_kind(tx: &mut Tx, order_id: &str, kind: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select id from holds where order_id = $1 and kind = $2 and status = 'open'")
        .bind(order_id)
        .bind(kind)
        .fetch_optional(&mut **tx)
        .await
}

/// Says anew why an open hold waits.
pub async fn set_reason(tx: &mut Tx, id: &str, reason: &str) -> sqlx::Result<()> {
    sqlx::query("update holds set reason = $1 where id = $2")
        .bind(reason)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Opens a hold of an order; returns its id. `contact_due_at_ms`: the time by which the
/// customer of a stock-out must be contacted.
pub async fn insert(
    tx: &mut Tx,
    order_id: &str,
    kind: &str,
    reason: &str,
    opened_at_ms: i64,
    contact_due_at_ms: Option<i64>,
) -> sqlx::Result<String> {
    let id = new_id("hld");
    sqlx::query(
        "insert into holds (id, order_id, kind, reason, status, opened_at_ms, contact_due_at_ms) values ($1, $2, $3, $4, 'open', $5, $6)",
    )
    .bind(&id)
    .bind(order_id)
    .bind(kind)
    .bind(reason)
    .bind(opened_at_ms)
    .bind(contact_due_at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Closes the open holds of an order that is cancelled (by whom, and why).
pub async fn cancel_open(
    tx: &mut Tx,
    order_id: &str,
    by: &str,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    let resolution = json!({ "choice": "cancel", "reason": reason });
    sqlx::query(
        "update holds set status = 'cancelled', resolved_at_ms = $1, resolved_by = $2, resolution = $3 where order_id = $4 and status = 'open'",
    )
    .bind(now_ms())
    .bind(by)
    .bind(resolution.to_string())
    .bind(order_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Closes the open holds of an order the storefront changed before any supplier had it: the
/// order is routed again from the new copy, and a check that still fails holds it again.
pub async fn supersede_open(tx: &mut Tx, order_id: &str, raw_request_id: &str) -> sqlx::Result<()> {
    let resolution = json!({ "choice": "superseded", "raw_request_id": raw_request_id });
    sqlx::query(
        "update holds set status = 'superseded', resolved_at_ms = $1, resolved_by = 'storefront', resolution = $2 where order_id = $3 and status = 'open'",
    )
    .bind(now_ms())
    .bind(resolution.to_string())
    .bind(order_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The order of a hold that is open and not resolved yet (a stock-out whose customer has not
/// been contacted), if it is.
pub async fn open_unresolved(tx: &mut Tx, hold_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "select order_id from holds where id = $1 and status = 'open' and resolution is null",
    )
    .bind(hold_id)
    .fetch_optional(&mut **tx)
    .await
}

/// Every line found a supplier: an open stock-out hold is over.
pub async fn close_stock_out(tx: &mut Tx, order_id: &str) -> sqlx::Result<()> {
    sqlx::query(
        "update holds set status = 'resolved', resolved_at_ms = $1, resolved_by = coalesce(resolved_by, 'routing') \
         where order_id = $2 and kind = 'stock_out' and status = 'open'",
    )
    .bind(now_ms())
    .bind(order_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The kinds of the holds of an order the operator released.
pub async fn released_kinds(conn: &mut Conn, order_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("select kind from holds where order_id = $1 and status = 'released'")
        .bind(order_id)
        .fetch_all(&mut *conn)
        .await
}

/// The holds in `status` (`all`: any), of one order or of all, newest first (at most 500).
pub async fn list(db: &Db, status: &str, order_id: Option<&str>) -> anyhow::Result<Vec<HoldView>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select {COLUMNS} from holds where ($1 = 'all' or status = $1) and ($2 = '' or order_id = $2) order by opened_at_ms desc, id desc limit 500"
    )))
    .bind(status)
    .bind(order_id.unwrap_or(""))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// A hold, read inside `tx`.
pub async fn get(tx: &mut Tx, id: &str) -> anyhow::Result<Option<HoldView>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "select {COLUMNS} from holds where id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Closes an open hold: `status` says how (released, resolved), `resolution` what was chosen.
/// A compare-and-set: whether it closed it (false: it was not open any more, another operator
/// closed it first).
pub async fn close(
    tx: &mut Tx,
    hold_id: &str,
    status: &str,
    by: &str,
    resolution: &Value,
) -> sqlx::Result<bool> {
    let closed = sqlx::query(
        "update holds set status = $1, resolved_at_ms = $2, resolved_by = $3, resolution = $4 where id = $5 and status = 'open'",
    )
    .bind(status)
    .bind(now_ms())
    .bind(by)
    .bind(resolution.to_string())
    .bind(hold_id)
    .execute(&mut **tx)
    .await?;
    Ok(closed.rows_affected() > 0)
}

/// Records what the customer chose for a hold that stays open (a stock-out's later date).
pub async fn set_resolution(
    tx: &mut Tx,
    id: &str,
    resolution: &Value,
    by: &str,
) -> sqlx::Result<()> {
    sqlx::query("update holds set resolution = $1, resolved_by = $2 where id = $3")
        .bind(resolution.to_string())
        .bind(by)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
