//! Canonical orders and their timeline. This module owns the `orders` and `order_events` tables.

use crate::db::{Conn, Db, Tx, deferred, new_id, now_ms};
use daifa_plugin_host::{Order, PaymentStatus};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

/// Where an order stands in Daifa.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Routed: its supplier orders are being pushed or are with the suppliers.
    Routed,
    /// Waiting for the operator; `hold_reason` says why.
    OnHold,
    /// A shipment for it came back from a supplier.
    Shipped,
    /// Every shipment of it is delivered, as the carriers report.
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        Self::Routed,
        Self::OnHold,
        Self::Shipped,
        Self::Delivered,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Routed => "routed",
            Self::OnHold => "on_hold",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The statuses an order may move to `self` from: the whole transition table. Nothing
    /// leaves `cancelled` (no cancelled order ships) nor `delivered`.
    pub fn allowed_from(self) -> &'static [OrderStatus] {
        use OrderStatus::*;
        match self {
            Routed => &[Routed, OnHold],
            // A job that dies after shipping (a write-back) holds the order for the operator.
            OnHold => &[Routed, OnHold, Shipped],
            Shipped => &[Routed, OnHold, Shipped],
            Delivered => &[Shipped, OnHold, Delivered],
            // A shipped order is cancelled when its parcels were intercepted (after-sales).
            Cancelled => &[Routed, OnHold, Shipped],
        }
    }
}

/// What [`set_status`] did: an order whose status was not one the move is allowed from (a
/// cancelled order a supplier says it shipped) is left as it is, and the caller says so.
#[must_use = "a status move may be refused: handle the order's actual status"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    Yes,
    /// Not moved: the order is in this status (none when it does not exist).
    No(Option<OrderStatus>),
}

impl Moved {
    pub fn happened(self) -> bool {
        self == Moved::Yes
    }

    /// For a move the caller's own checks make certain: a refusal is logged (it means another
    /// path won a race the caller did not foresee) and the order is left as it is.
    pub fn expected(self, order_id: &str, to: OrderStatus) {
        if let Moved::No(found) = self {
            tracing::warn!(order_id, to = to.as_str(), found = ?found, "order status not moved: refused by the transition table");
        }
    }
}

/// A stored order.
#[derive(Debug, Clone, Serialize)]
pub struct StoredOrder {
    pub id: String,
    pub connection_id: String,
    pub external_id: String,
    pub order_number: Option<String>,
    pub storefront: String,
    pub currency: String,
    pub total_minor: i64,
    pub status: String,
    pub hold_reason: Option<String>,
    pub placed_at_ms: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub raw_request_id: String,
    /// The canonical order as the channel plugin produced it.
    pub canonical: serde_json::Value,
}

impl StoredOrder {
    pub fn canonical_order(&self) -> anyhow::Result<Order> {
        Ok(serde_json::from_value(self.canonical.clone())?)
    }
}

const COLUMNS: &str = "id, connection_id, external_id, order_number, storefront, currency, total_minor, status, hold_reason, \
                       placed_at_ms, created_at_ms, updated_at_ms, raw_request_id, canonical";

fn from_row(r: &AnyRow) -> anyhow::Result<StoredOrder> {
    Ok(StoredOrder {
        id: r.try_get("id")?,
        connection_id: r.try_get("connection_id")?,
        external_id: r.try_get("external_id")?,
        order_number: r.try_get("order_number")?,
        storefront: r.try_get("storefront")?,
        currency: r.try_get("currency")?,
        total_minor: r.try_get("total_minor")?,
        status: r.try_get("status")?,
        hold_reason: r.try_get("hold_reason")?,
        placed_at_ms: r.try_get("placed_at_ms")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        raw_request_id: r.try_get("raw_request_id")?,
        canonical: serde_json::from_str(&r.try_get::<String, _>("canonical")?)?,
    })
}

/// How many orders are stored (the scale benchmark's measure).
pub async fn count(db: &crate::db::Db) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from orders")
        .fetch_one(&db.pool)
        .await
}

/// How many orders each storefront connection (by id) has sent, by id.
pub async fn count_by_connection(db: &crate::db::Db) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "select connection_id, count(*) from orders group by connection_id order by connection_id",
    )
    .fetch_all(&db.pool)
    .await
}

/// Stores a new order, or finds the one the storefront sent before (storefronts resend
/// routinely). Returns the order's id and whether it is new.
pub async fn insert_or_find(
    tx: &mut Tx,
    connection_id: &str,
    order: &Order,
    raw_request_id: &str,
) -> anyhow::Result<(String, Option<StoredOrder>)> {
    let now = now_ms();
    let id = new_id("ord");
    let canonical = serde_json::to_value(order)?;
    let inserted = sqlx::query(
        "insert into orders (id, connection_id, external_id, order_number, storefront, currency, total_minor, status, \
                             hold_reason, canonical, raw_request_id, placed_at_ms, created_at_ms, updated_at_ms) \
         values ($1, $2, $3, $4, $5, $6, $7, 'routed', null, $8, $9, $10, $11, $11) \
         on conflict (connection_id, external_id) do nothing",
    )
    .bind(&id)
    .bind(connection_id)
    .bind(&order.external_id)
    .bind(&order.order_number)
    .bind(&order.storefront)
    .bind(&order.currency)
    .bind(order.total.amount_minor)
    .bind(canonical.to_string())
    .bind(raw_request_id)
    .bind(order.placed_at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 1 {
        let stored = StoredOrder {
            id: id.clone(),
            connection_id: connection_id.to_string(),
            external_id: order.external_id.clone(),
            order_number: order.order_number.clone(),
            storefront: order.storefront.clone(),
            currency: order.currency.clone(),
            total_minor: order.total.amount_minor,
            status: OrderStatus::Routed.as_str().to_string(),
            hold_reason: None,
            placed_at_ms: order.placed_at,
            created_at_ms: now,
            updated_at_ms: now,
            raw_request_id: raw_request_id.to_string(),
            canonical,
        };
        return Ok((id, Some(stored)));
    }
    let existing: String =
        sqlx::query_scalar("select id from orders where connection_id = $1 and external_id = $2")
            .bind(connection_id)
            .bind(&order.external_id)
            .fetch_one(&mut **tx)
            .await?;
    Ok((existing, None))
}

/// Replaces the stored copy of an order by a later one from the storefront (the caller holds
/// the order's lock and has checked that `order` is later). The raw request of each copy is
/// named on the timeline; `raw_request_id` stays the first one's.
pub async fn replace_canonical(tx: &mut Tx, order_id: &str, order: &Order) -> anyhow::Result<()> {
    sqlx::query(
        "update orders set canonical = $1, order_number = $2, total_minor = $3, updated_at_ms = $4 where id = $5",
    )
    .bind(serde_json::to_string(order)?)
    .bind(&order.order_number)
    .bind(order.total.amount_minor)
    .bind(now_ms())
    .bind(order_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The payment status as the timeline and the API name it (`partially-paid`).
pub fn payment_name(payment: Option<PaymentStatus>) -> &'static str {
    match payment {
        None => "unknown",
        Some(PaymentStatus::Pending) => "pending",
        Some(PaymentStatus::Authorized) => "authorized",
        Some(PaymentStatus::PartiallyPaid) => "partially-paid",
        Some(PaymentStatus::Paid) => "paid",
        Some(PaymentStatus::PartiallyRefunded) => "partially-refunded",
        Some(PaymentStatus::Refunded) => "refunded",
        Some(PaymentStatus::Voided) => "voided",
        Some(PaymentStatus::CashOnDelivery) => "cash-on-delivery",
    }
}

/// Whether the buyer has committed to the order: paid, authorized, or to pay on delivery (or
/// the storefront does not say). The shipping clocks (24 h to ship) start then.
pub fn payment_committed(payment: Option<PaymentStatus>) -> bool {
    !matches!(
        payment,
        Some(
            PaymentStatus::Pending
                | PaymentStatus::PartiallyPaid
                | PaymentStatus::Refunded
                | PaymentStatus::Voided
        )
    )
}

pub async fn find_by_external_id(
    tx: &mut Tx,
    connection_id: &str,
    external_id: &str,
) -> anyhow::Result<Option<StoredOrder>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "select {COLUMNS} from orders where connection_id = $1 and external_id = $2"
    )))
    .bind(connection_id)
    .bind(external_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Moves an order to `status` (with its hold reason) if the table allows it from the status it
/// is in: a compare-and-set, never an overwrite of what another path wrote meanwhile.
pub async fn set_status(
    tx: &mut Tx,
    order_id: &str,
    status: OrderStatus,
    hold_reason: Option<&str>,
) -> sqlx::Result<Moved> {
    let from = status
        .allowed_from()
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let updated = sqlx::query(AssertSqlSafe(format!(
        "update orders set status = $1, hold_reason = $2, updated_at_ms = $3 where id = $4 and status in ({from})"
    )))
    .bind(status.as_str())
    .bind(hold_reason)
    .bind(now_ms())
    .bind(order_id)
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() == 1 {
        return Ok(Moved::Yes);
    }
    let current: Option<String> = sqlx::query_scalar("select status from orders where id = $1")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(Moved::No(current.as_deref().and_then(OrderStatus::parse)))
}

/// Serializes what happens to one order until the transaction ends (a cancellation, a
/// supplier's late shipment, after-sales): on PostgreSQL the second waits for the row and then
/// reads what the first wrote. On SQLite there is nothing to do: a write transaction
/// (`Db::begin`, `begin immediate`) holds the database's one write lock from its start, so
/// every other writer waits for it already (and reads in WAL mode see what was committed before
/// it began, which is everything another writer did).
pub async fn lock(tx: &mut Tx, order_id: &str) -> sqlx::Result<()> {
    if crate::db::is_sqlite(tx) {
        return Ok(());
    }
    sqlx::query("update orders set id = id where id = $1")
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// An order's status as stored, read inside a transaction.
pub async fn status_in(tx: &mut Tx, order_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select status from orders where id = $1")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await
}

/// The storefront connection an order came from, read inside a transaction.
pub async fn channel_in(tx: &mut Tx, order_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select connection_id from orders where id = $1")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await
}

/// The destination country of each of `order_ids` that has one, in one query.
pub async fn destinations(
    db: &Db,
    order_ids: &[&str],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    if order_ids.is_empty() {
        return Ok(Default::default());
    }
    let params: Vec<String> = (1..=order_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "select id, canonical from orders where id in ({})",
        params.join(", ")
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for id in order_ids {
        query = query.bind(*id);
    }
    let mut out = std::collections::BTreeMap::new();
    for r in query.fetch_all(&db.pool).await? {
        let canonical: serde_json::Value =
            serde_json::from_str(&r.try_get::<String, _>("canonical")?)?;
        if let Some(country) = canonical["shipping_address"]["country_code"].as_str() {
            out.insert(r.try_get("id")?, country.to_string());
        }
    }
    Ok(out)
}

/// Adds an entry to the order's timeline.
pub async fn record_event(
    tx: &mut Tx,
    order_id: &str,
    kind: &str,
    detail: serde_json::Value,
) -> sqlx::Result<()> {
    static EVENT: deferred::Insert = deferred::Insert {
        head: "insert into order_events (id, order_id, kind, detail, created_at_ms)",
        columns: 5,
        tail: "",
    };
    let row = vec![
        new_id("evt").into(),
        order_id.into(),
        kind.into(),
        detail.to_string().into(),
        now_ms().into(),
    ];
    // Nothing reads an event back in the transaction that records it: it may wait.
    deferred::insert(tx, &EVENT, vec![row]).await
}

/// An order, read inside a transaction.
pub async fn get_in(conn: &mut Conn, id: &str) -> anyhow::Result<Option<StoredOrder>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "select {COLUMNS} from orders where id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Orders by id (those that exist), in one query.
pub async fn get_many_in(conn: &mut Conn, ids: &[&str]) -> anyhow::Result<Vec<StoredOrder>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = sqlx::query(AssertSqlSafe(format!(
        "select {COLUMNS} from orders where id in ({})",
        crate::db::placeholders(1, ids.len())
    )));
    for id in ids {
        query = query.bind(*id);
    }
    query
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

pub async fn get(db: &Db, id: &str) -> anyhow::Result<Option<StoredOrder>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "select {COLUMNS} from orders where id = $1"
    )))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list(db: &Db, status: Option<&str>, limit: i64) -> anyhow::Result<Vec<StoredOrder>> {
    let rows = match status {
        Some(s) => sqlx::query(AssertSqlSafe(format!(
            "select {COLUMNS} from orders where status = $1 order by created_at_ms desc limit $2"
        )))
        .bind(s)
        .bind(limit)
        .fetch_all(&db.pool)
        .await?,
        None => {
            sqlx::query(AssertSqlSafe(format!(
                "select {COLUMNS} from orders order by created_at_ms desc limit $1"
            )))
            .bind(limit)
            .fetch_all(&db.pool)
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

#[derive(Debug, Serialize)]
pub struct EventView {
    pub kind: String,
    pub detail: serde_json::Value,
    pub created_at_ms: i64,
}

pub async fn events(conn: &mut Conn, order_id: &str) -> anyhow::Result<Vec<EventView>> {
    let rows = sqlx::query("select kind, detail, created_at_ms from order_events where order_id = $1 order by created_at_ms, id")
        .bind(order_id)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(EventView {
                kind: r.try_get("kind")?,
                detail: serde_json::from_str(&r.try_get::<String, _>("detail")?)?,
                created_at_ms: r.try_get("created_at_ms")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_leaves_cancelled_or_delivered() {
        for to in OrderStatus::ALL {
            assert!(
                !to.allowed_from().contains(&OrderStatus::Cancelled),
                "cancelled → {to:?}"
            );
            if to != OrderStatus::Delivered {
                assert!(
                    !to.allowed_from().contains(&OrderStatus::Delivered),
                    "delivered → {to:?}"
                );
            }
        }
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
    }
}
