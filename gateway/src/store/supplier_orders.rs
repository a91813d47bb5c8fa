//! Supplier orders: what each supplier is asked to ship, with their lines, the substitutions an
//! operator chose for lines of an order, and the changes sent to suppliers after they had the
//! order. This module owns the `supplier_orders`, `supplier_order_lines`, `line_substitutions`
//! and `supplier_order_updates` tables.
//!
//! Every change of a supplier order's status is a compare-and-set against one table of moves
//! ([`SoStatus::allowed_from`]: `update … where id = $1 and status in (the statuses the move is
//! allowed from)`), so a stale read can never overwrite what another path wrote meanwhile: a push
//! answered after the supplier's `accepted` callback, a deadline firing after the
//! acknowledgement, a `shipped` callback after a cancellation. A move that lost such a race is an
//! outcome the caller handles ([`Moved::No`] with the status found), never a silent overwrite.
//! A change sent to a supplier moves by compare-and-set too ([`set_update_status`]).

use crate::db::{Conn, Db, Tx, deferred, now_ms, placeholders};
use serde::Serialize;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where a supplier order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SoStatus {
    /// Routed, not pushed yet (or its push is being retried).
    Pending,
    /// Waiting for the operator before it is pushed: the supplier it replaces may ship after
    /// all (a late acknowledgement or shipment of a failed-over supplier order).
    Held,
    /// Pushed; the supplier has not acknowledged it yet.
    Submitted,
    /// The supplier acknowledged it.
    Accepted,
    /// The supplier shipped (some of) it.
    Shipped,
    /// The supplier was asked to cancel it and has not answered yet.
    CancelRequested,
    /// Cancelled: never pushed, or cancelled at the supplier's.
    Cancelled,
    /// The supplier refused it; its lines went to the next offer.
    Rejected,
    /// The supplier did not acknowledge it in time; its lines went to the next offer.
    TimedOut,
    /// Its push dead-lettered; its lines went to the next offer.
    Undeliverable,
}

impl SoStatus {
    pub const ALL: [SoStatus; 10] = [
        Self::Pending,
        Self::Held,
        Self::Submitted,
        Self::Accepted,
        Self::Shipped,
        Self::CancelRequested,
        Self::Cancelled,
        Self::Rejected,
        Self::TimedOut,
        Self::Undeliverable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Held => "held",
            Self::Submitted => "submitted",
            Self::Accepted => "accepted",
            Self::Shipped => "shipped",
            Self::CancelRequested => "cancel_requested",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
            Self::TimedOut => "timed_out",
            Self::Undeliverable => "undeliverable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The statuses a supplier order may move to `self` from: the whole transition table.
    pub fn allowed_from(self) -> &'static [SoStatus] {
        use SoStatus::*;
        match self {
            // An operator's retry of a dead push revives it; a released hold lets it go.
            Pending => &[Undeliverable, Held],
            Held => &[Pending],
            // From Held only for a push that was in flight when the hold came: it is with the
            // supplier whatever the hold says (a push job never starts from Held).
            Submitted => &[Pending, Held],
            // A supplier may acknowledge before its answer to the push arrives. From Held: a
            // push in flight when the hold came. From CancelRequested: the supplier could not cancel and the order goes on (an
            // after-sales cancel case that failed).
            Accepted => &[Pending, Held, Submitted, CancelRequested],
            // Several parcels: shipped again. A supplier may ship before acknowledging.
            Shipped => &[Pending, Submitted, Accepted, Shipped],
            // From Cancelled: a supplier order cancelled as "never pushed" while its push was in
            // flight, found to have reached the supplier after all.
            CancelRequested => &[Submitted, Accepted, Cancelled],
            // Shipped: the supplier intercepted the parcel (an after-sales cancel case).
            Cancelled => &[Pending, Held, Submitted, Accepted, CancelRequested, Shipped],
            Rejected => &[Pending, Submitted, Accepted],
            TimedOut => &[Submitted],
            Undeliverable => &[Pending],
        }
    }

    /// Whether the supplier order holds its lines: they are not routed again, and the supplier
    /// may ship them.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Self::Pending
                | Self::Held
                | Self::Submitted
                | Self::Accepted
                | Self::Shipped
                | Self::CancelRequested
        )
    }

    /// Whether the supplier has (or may have) the order: it was pushed, or a push of it was
    /// in flight.
    pub fn was_pushed(self) -> bool {
        matches!(
            self,
            Self::Submitted | Self::Accepted | Self::Shipped | Self::CancelRequested
        )
    }

    /// The SQL list of statuses, for `status in (…)`.
    pub fn sql_list(statuses: &[SoStatus]) -> String {
        statuses
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Supplier order statuses whose lines are taken (not to be routed again): [`SoStatus::is_live`].
const ACTIVE: &str = "'pending', 'held', 'submitted', 'accepted', 'shipped', 'cancel_requested'";
/// Supplier order statuses of a supplier that failed its lines: the pair is not tried again.
const FAILED: &str = "'rejected', 'timed_out', 'undeliverable'";

/// What a compare-and-set did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    Yes,
    /// The supplier order was not in a status the move is allowed from: it is in this one
    /// (none when it does not exist).
    No(Option<SoStatus>),
}

impl Moved {
    pub fn happened(self) -> bool {
        self == Moved::Yes
    }
}

/// Optional columns a move writes with the status.
#[derive(Debug, Default, Clone, Copy)]
pub struct Change<'a> {
    /// The supplier's own id of the order (kept when none).
    pub external_id: Option<&'a str>,
    /// Why (kept when none).
    pub reason: Option<&'a str>,
}

/// Moves a supplier order to `to` if the table allows it from the status it is in now.
pub async fn transition(
    tx: &mut Tx,
    id: &str,
    to: SoStatus,
    change: Change<'_>,
) -> sqlx::Result<Moved> {
    transition_from(tx, id, to.allowed_from(), to, change).await
}

/// Moves a supplier order to `to` only from one of `from` (each of which the table must
/// allow): a caller that knows more than the table narrows it.
pub async fn transition_from(
    tx: &mut Tx,
    id: &str,
    from: &[SoStatus],
    to: SoStatus,
    change: Change<'_>,
) -> sqlx::Result<Moved> {
    debug_assert!(
        from.iter().all(|f| to.allowed_from().contains(f)),
        "{from:?} → {to:?} is not in the table"
    );
    let updated = sqlx::query(AssertSqlSafe(format!(
        "update supplier_orders set status = $1, external_id = coalesce($2, external_id), reason = coalesce($3, reason), updated_at_ms = $4 \
         where id = $5 and status in ({})",
        SoStatus::sql_list(from)
    )))
    .bind(to.as_str())
    .bind(change.external_id)
    .bind(change.reason)
    .bind(now_ms())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() == 1 {
        return Ok(Moved::Yes);
    }
    Ok(Moved::No(current(tx, id).await?))
}

/// Records the supplier's own id of the order without moving it.
pub async fn set_external_id(tx: &mut Tx, id: &str, external_id: &str) -> sqlx::Result<()> {
    sqlx::query("update supplier_orders set external_id = $1, updated_at_ms = $2 where id = $3")
        .bind(external_id)
        .bind(now_ms())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The status a supplier order is in, read inside the transaction.
pub async fn current(tx: &mut Tx, id: &str) -> sqlx::Result<Option<SoStatus>> {
    let status: Option<String> =
        sqlx::query_scalar("select status from supplier_orders where id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(status.as_deref().and_then(SoStatus::parse))
}

/// A supplier order to store: routed now, pending.
pub struct NewSupplierOrder<'a> {
    pub id: &'a str,
    pub order_id: &'a str,
    pub supplier_connection_id: &'a str,
    /// The customs value declared to the supplier, in minor units, and its currency.
    pub declared_value_minor: Option<i64>,
    pub declared_currency: Option<&'a str>,
    pub declared_reason: &'a str,
    pub avoid_carriers: &'a [String],
    /// The failed supplier order whose lines this one takes over.
    pub replaces_id: Option<&'a str>,
    pub decision_id: &'a str,
    pub created_at_ms: i64,
    /// The supplier order this one sends again (a reship, an exchange's replacement).
    pub reship_of: Option<&'a str>,
    /// The after-sales case it is made for.
    pub case_id: Option<&'a str>,
    pub lines: Vec<NewLine<'a>>,
}

/// A line of a supplier order to store.
pub struct NewLine<'a> {
    pub external_line_id: &'a str,
    pub storefront_sku: &'a str,
    pub supplier_sku: &'a str,
    pub quantity: u32,
    /// The offer it was routed by.
    pub offer_id: &'a str,
}

/// Stores a new supplier order with its lines.
pub async fn insert(tx: &mut Tx, so: &NewSupplierOrder<'_>) -> anyhow::Result<()> {
    // It may wait for `deferred::flush` with its lines: what reads supplier orders in a new
    // order's first application (the daily caps' count of other orders') flushes first.
    static SUPPLIER_ORDER: deferred::Insert = deferred::Insert {
        head: "insert into supplier_orders (id, order_id, supplier_connection_id, status, declared_value_minor, declared_currency, \
               declared_reason, avoid_carriers, replaces_id, decision_id, created_at_ms, updated_at_ms, reship_of, case_id)",
        columns: 14,
        tail: "",
    };
    let row = vec![
        so.id.into(),
        so.order_id.into(),
        so.supplier_connection_id.into(),
        SoStatus::Pending.as_str().into(),
        so.declared_value_minor.into(),
        so.declared_currency.into(),
        so.declared_reason.into(),
        serde_json::to_string(so.avoid_carriers)?.into(),
        so.replaces_id.into(),
        so.decision_id.into(),
        so.created_at_ms.into(),
        so.created_at_ms.into(),
        so.reship_of.into(),
        so.case_id.into(),
    ];
    deferred::insert(tx, &SUPPLIER_ORDER, vec![row]).await?;
    if so.lines.is_empty() {
        return Ok(());
    }
    // One statement for all the lines.
    static LINE: deferred::Insert = deferred::Insert {
        head: "insert into supplier_order_lines (supplier_order_id, external_line_id, storefront_sku, supplier_sku, quantity, offer_id)",
        columns: 6,
        tail: "",
    };
    let rows = so
        .lines
        .iter()
        .map(|line| {
            vec![
                so.id.into(),
                line.external_line_id.into(),
                line.storefront_sku.into(),
                line.supplier_sku.into(),
                i64::from(line.quantity).into(),
                line.offer_id.into(),
            ]
        })
        .collect();
    deferred::insert(tx, &LINE, rows).await?;
    Ok(())
}

/// The lines of an order that a live supplier order carries.
pub async fn lines_taken(conn: &mut Conn, order_id: &str) -> sqlx::Result<BTreeSet<String>> {
    Ok(sqlx::query_scalar(AssertSqlSafe(format!(
        "select l.external_line_id from supplier_order_lines l join supplier_orders s on s.id = l.supplier_order_id \
         where s.order_id = $1 and s.status in ({ACTIVE})"
    )))
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect())
}

/// The `(line, supplier connection)` pairs of an order whose supplier failed the line.
pub async fn failed_pairs(
    conn: &mut Conn,
    order_id: &str,
) -> sqlx::Result<BTreeSet<(String, String)>> {
    sqlx::query(AssertSqlSafe(format!(
        "select l.external_line_id, s.supplier_connection_id from supplier_order_lines l \
         join supplier_orders s on s.id = l.supplier_order_id where s.order_id = $1 and s.status in ({FAILED})"
    )))
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("external_line_id")?, r.try_get("supplier_connection_id")?)))
    .collect()
}

/// How many supplier orders each of `suppliers` was given since `since_ms`, cancelled ones
/// aside; a supplier with none is absent.
pub async fn counts_since(
    conn: &mut Conn,
    since_ms: i64,
    suppliers: &[&str],
) -> sqlx::Result<BTreeMap<String, u32>> {
    let sql = format!(
        "select supplier_connection_id, count(*) as n from supplier_orders where created_at_ms >= $1 \
         and status <> 'cancelled' and supplier_connection_id in ({}) group by supplier_connection_id",
        placeholders(2, suppliers.len())
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(since_ms);
    for s in suppliers {
        query = query.bind(*s);
    }
    let mut counts = BTreeMap::new();
    for r in query.fetch_all(&mut *conn).await? {
        let n: i64 = r.try_get("n")?;
        counts.insert(
            r.try_get("supplier_connection_id")?,
            u32::try_from(n).unwrap_or(u32::MAX),
        );
    }
    Ok(counts)
}

/// The order and the supplier connection of a supplier order.
pub async fn order_and_supplier(tx: &mut Tx, id: &str) -> sqlx::Result<Option<(String, String)>> {
    let row =
        sqlx::query("select order_id, supplier_connection_id from supplier_orders where id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    row.map(|r| Ok((r.try_get("order_id")?, r.try_get("supplier_connection_id")?)))
        .transpose()
}

/// The order of a supplier order that is undeliverable (its push died and it was failed over).
pub async fn order_if_undeliverable(tx: &mut Tx, id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "select order_id from supplier_orders where id = $1 and status = 'undeliverable'",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// The live supplier orders of an order that carry a line of supplier order `id`.
pub async fn takers_of_lines(tx: &mut Tx, order_id: &str, id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "select distinct s.id from supplier_order_lines l join supplier_orders s on s.id = l.supplier_order_id \
         where s.order_id = $1 and s.status in ({ACTIVE}) and l.external_line_id in \
         (select external_line_id from supplier_order_lines where supplier_order_id = $2) order by s.id"
    )))
    .bind(order_id)
    .bind(id)
    .fetch_all(&mut **tx)
    .await
}

/// A supplier order with its lines.
#[derive(Debug, Clone, Serialize)]
pub struct SupplierOrderView {
    pub id: String,
    pub order_id: String,
    pub supplier_connection_id: String,
    pub status: String,
    pub external_id: Option<String>,
    pub reason: Option<String>,
    /// The customs value declared to the supplier.
    pub declared_value: Option<daifa_plugin_host::Money>,
    pub declared_reason: Option<String>,
    pub avoid_carriers: Vec<String>,
    /// The failed supplier order whose lines this one took over.
    pub replaces_id: Option<String>,
    pub decision_id: Option<String>,
    /// The supplier order this one sends again (a reship, an exchange's replacement).
    pub reship_of: Option<String>,
    /// The after-sales case it was made for.
    pub case_id: Option<String>,
    pub lines: Vec<SupplierOrderLineView>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SupplierOrderLineView {
    pub external_line_id: String,
    pub storefront_sku: String,
    pub supplier_sku: String,
    pub quantity: i64,
    pub offer_id: Option<String>,
}

/// Supplier orders matching a where clause over `supplier_orders` (`$1`… bound to `args`),
/// with their lines, in two queries.
async fn load(
    conn: &mut Conn,
    filter_sql: &str,
    args: &[&str],
) -> anyhow::Result<Vec<SupplierOrderView>> {
    let mut query = sqlx::query(AssertSqlSafe(format!(
        "select id, order_id, supplier_connection_id, status, external_id, reason, declared_value_minor, declared_currency, \
         declared_reason, avoid_carriers, replaces_id, decision_id, reship_of, case_id, created_at_ms, updated_at_ms \
         from supplier_orders where {filter_sql} order by created_at_ms, id"
    )));
    for arg in args {
        query = query.bind(*arg);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let amount: Option<i64> = r.try_get("declared_value_minor")?;
        let currency: Option<String> = r.try_get("declared_currency")?;
        out.push(SupplierOrderView {
            id: r.try_get("id")?,
            order_id: r.try_get("order_id")?,
            supplier_connection_id: r.try_get("supplier_connection_id")?,
            status: r.try_get("status")?,
            external_id: r.try_get("external_id")?,
            reason: r.try_get("reason")?,
            declared_value: amount.zip(currency).map(|(amount_minor, currency)| {
                daifa_plugin_host::Money {
                    amount_minor,
                    currency,
                }
            }),
            declared_reason: r.try_get("declared_reason")?,
            avoid_carriers: serde_json::from_str(&r.try_get::<String, _>("avoid_carriers")?)?,
            replaces_id: r.try_get("replaces_id")?,
            decision_id: r.try_get("decision_id")?,
            reship_of: r.try_get("reship_of")?,
            case_id: r.try_get("case_id")?,
            lines: Vec::new(),
            created_at_ms: r.try_get("created_at_ms")?,
            updated_at_ms: r.try_get("updated_at_ms")?,
        });
    }
    let mut query = sqlx::query(AssertSqlSafe(format!(
        "select supplier_order_id, external_line_id, storefront_sku, supplier_sku, quantity, offer_id from supplier_order_lines \
         where supplier_order_id in (select id from supplier_orders where {filter_sql}) order by external_line_id"
    )));
    for arg in args {
        query = query.bind(*arg);
    }
    let lines = query.fetch_all(&mut *conn).await?;
    let at: HashMap<String, usize> = out
        .iter()
        .enumerate()
        .map(|(i, so)| (so.id.clone(), i))
        .collect();
    for l in lines {
        let so_id: String = l.try_get("supplier_order_id")?;
        if let Some(so) = at.get(&so_id).map(|i| &mut out[*i]) {
            so.lines.push(SupplierOrderLineView {
                external_line_id: l.try_get("external_line_id")?,
                storefront_sku: l.try_get("storefront_sku")?,
                supplier_sku: l.try_get("supplier_sku")?,
                quantity: l.try_get("quantity")?,
                offer_id: l.try_get("offer_id")?,
            });
        }
    }
    Ok(out)
}

/// A supplier order with its lines.
pub async fn get(db: &Db, id: &str) -> anyhow::Result<Option<SupplierOrderView>> {
    let mut conn = db.pool.acquire().await?;
    Ok(load(&mut conn, "id = $1", &[id]).await?.pop())
}

/// Supplier orders with their lines, by id (those that exist), in two queries.
pub async fn get_many(conn: &mut Conn, ids: &[&str]) -> anyhow::Result<Vec<SupplierOrderView>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let filter = format!("id in ({})", placeholders(1, ids.len()));
    load(conn, &filter, ids).await
}

/// The supplier orders of an order with their lines, oldest first.
pub async fn of_order(conn: &mut Conn, order_id: &str) -> anyhow::Result<Vec<SupplierOrderView>> {
    load(conn, "order_id = $1", &[order_id]).await
}

/// The order a supplier order belongs to.
pub async fn order_of(tx: &mut Tx, supplier_order_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select order_id from supplier_orders where id = $1")
        .bind(supplier_order_id)
        .fetch_optional(&mut **tx)
        .await
}

/// The supplier connection of a supplier order.
pub async fn supplier_of(tx: &mut Tx, supplier_order_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select supplier_connection_id from supplier_orders where id = $1")
        .bind(supplier_order_id)
        .fetch_optional(&mut **tx)
        .await
}

/// The newest supplier order that holds (or shipped) a line of an order.
pub async fn carrying_line(
    tx: &mut Tx,
    order_id: &str,
    external_line_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "select s.id from supplier_orders s join supplier_order_lines l on l.supplier_order_id = s.id \
         where s.order_id = $1 and l.external_line_id = $2 and s.status in ({ACTIVE}) \
         order by s.created_at_ms desc limit 1"
    )))
    .bind(order_id)
    .bind(external_line_id)
    .fetch_optional(&mut **tx)
    .await
}

/// The newest supplier order made for an after-sales case (a reship, a replacement).
pub async fn latest_for_case(tx: &mut Tx, case_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "select id from supplier_orders where case_id = $1 order by created_at_ms desc limit 1",
    )
    .bind(case_id)
    .fetch_optional(&mut **tx)
    .await
}

/// How many supplier orders of an order are in one of `statuses`.
pub async fn count_in(tx: &mut Tx, order_id: &str, statuses: &[SoStatus]) -> sqlx::Result<i64> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "select count(*) from supplier_orders where order_id = $1 and status in ({})",
        SoStatus::sql_list(statuses)
    )))
    .bind(order_id)
    .fetch_one(&mut **tx)
    .await
}

/// The supplier orders of an order, each with its status and supplier connection.
pub async fn statuses_of(
    tx: &mut Tx,
    order_id: &str,
) -> anyhow::Result<Vec<(String, SoStatus, String)>> {
    let rows = sqlx::query(
        "select id, status, supplier_connection_id from supplier_orders where order_id = $1 order by created_at_ms, id",
    )
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            let status: String = r.try_get("status")?;
            Ok((
                r.try_get("id")?,
                SoStatus::parse(&status)
                    .ok_or_else(|| anyhow::anyhow!("unknown supplier order status `{status}`"))?,
                r.try_get("supplier_connection_id")?,
            ))
        })
        .collect()
}

/// The offer a line of a supplier order was routed by (none for a line or an offer id that is
/// not there).
pub async fn offer_of_line(
    tx: &mut Tx,
    supplier_order_id: &str,
    external_line_id: &str,
) -> sqlx::Result<Option<String>> {
    let offer_id: Option<Option<String>> = sqlx::query_scalar(
        "select offer_id from supplier_order_lines where supplier_order_id = $1 and external_line_id = $2",
    )
    .bind(supplier_order_id)
    .bind(external_line_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(offer_id.flatten())
}

/// The supplier SKUs of a supplier order.
pub async fn supplier_skus(tx: &mut Tx, supplier_order_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select distinct supplier_sku from supplier_order_lines where supplier_order_id = $1",
    )
    .bind(supplier_order_id)
    .fetch_all(&mut **tx)
    .await
}

/// The quantity of each line of a supplier order.
pub async fn line_quantities(
    tx: &mut Tx,
    supplier_order_id: &str,
) -> sqlx::Result<Vec<(String, i64)>> {
    let rows = sqlx::query(
        "select external_line_id, quantity from supplier_order_lines where supplier_order_id = $1",
    )
    .bind(supplier_order_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("external_line_id")?, r.try_get("quantity")?)))
        .collect()
}

/// Sets the quantity of each line of a supplier order (a storefront's change); a line at 0
/// is removed.
pub async fn set_line_quantities(
    tx: &mut Tx,
    supplier_order_id: &str,
    lines: &[(String, u32)],
) -> sqlx::Result<()> {
    for (line, quantity) in lines {
        if *quantity == 0 {
            sqlx::query(
                "delete from supplier_order_lines where supplier_order_id = $1 and external_line_id = $2",
            )
            .bind(supplier_order_id)
            .bind(line)
            .execute(&mut **tx)
            .await?;
        } else {
            sqlx::query(
                "update supplier_order_lines set quantity = $1 where supplier_order_id = $2 and external_line_id = $3",
            )
            .bind(i64::from(*quantity))
            .bind(supplier_order_id)
            .bind(line)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// The pending supplier orders that took over the lines of `supplier_order_id`.
pub async fn pending_replacements(
    tx: &mut Tx,
    supplier_order_id: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select id from supplier_orders where replaces_id = $1 and status = 'pending' order by id",
    )
    .bind(supplier_order_id)
    .fetch_all(&mut **tx)
    .await
}

/// A supplier order of `supplier_connection_id` with its order (callbacks name only theirs).
pub async fn of_supplier(
    tx: &mut Tx,
    supplier_connection_id: &str,
    supplier_order_id: &str,
) -> sqlx::Result<Option<(String, String)>> {
    let row = sqlx::query(
        "select id, order_id from supplier_orders where id = $1 and supplier_connection_id = $2",
    )
    .bind(supplier_order_id)
    .bind(supplier_connection_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("order_id")?)))
        .transpose()
}

// ---- substitutions ----

/// The storefront SKU an operator chose instead, by line of an order.
pub async fn substitutions_of(
    conn: &mut Conn,
    order_id: &str,
) -> sqlx::Result<BTreeMap<String, String>> {
    sqlx::query(
        "select external_line_id, storefront_sku from line_substitutions where order_id = $1",
    )
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("external_line_id")?, r.try_get("storefront_sku")?)))
    .collect()
}

/// Ships another product for a line of an order (a stock-out's alternative), with the discount
/// the customer is given; a later choice for the line replaces it.
pub async fn substitute(
    tx: &mut Tx,
    order_id: &str,
    external_line_id: &str,
    storefront_sku: &str,
    discount_minor: Option<i64>,
    currency: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into line_substitutions (order_id, external_line_id, storefront_sku, discount_minor, currency, created_at_ms) \
         values ($1, $2, $3, $4, $5, $6) on conflict (order_id, external_line_id) do update set \
         storefront_sku = excluded.storefront_sku, discount_minor = excluded.discount_minor, currency = excluded.currency",
    )
    .bind(order_id)
    .bind(external_line_id)
    .bind(storefront_sku)
    .bind(discount_minor)
    .bind(currency)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

// ---- changes sent to suppliers ----

/// Where a change sent to a supplier stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateStatus {
    /// Waiting for the supplier order's push to be answered (it may have reached the supplier
    /// with the copy before): queued then.
    Waiting,
    /// Waiting for its job.
    Queued,
    /// Sent; the supplier answers later.
    Requested,
    Applied,
    Refused,
    /// The supplier cannot take it through its plugin: a task asks the shop to.
    ByHand,
    /// Not sent: the supplier order shipped, or was cancelled or failed over, first.
    Dropped,
}

impl UpdateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Queued => "queued",
            Self::Requested => "requested",
            Self::Applied => "applied",
            Self::Refused => "refused",
            Self::ByHand => "by_hand",
            Self::Dropped => "dropped",
        }
    }

    /// The statuses an update may move to `self` from.
    fn allowed_from(self) -> &'static [UpdateStatus] {
        use UpdateStatus::*;
        match self {
            Waiting => &[],
            Queued => &[Waiting],
            Requested => &[Queued],
            // A later answer (`update-answered`) follows `Requested`; a prompt one, `Queued`.
            Applied | Refused => &[Queued, Requested],
            ByHand => &[Queued, Requested],
            Dropped => &[Waiting, Queued],
        }
    }
}

/// A change sent (or to send) to the supplier of a supplier order.
pub struct Update {
    pub id: String,
    pub supplier_order_id: String,
    pub order_id: String,
    /// The names of what changed.
    pub changes: Vec<String>,
    /// The quantity each line of the supplier order now has (0: removed).
    pub lines: Vec<(String, u32)>,
    pub status: String,
    pub created_at_ms: i64,
}

/// Stores a change to send to the supplier of a supplier order; `lines` is the JSON array of
/// `{external_line_id, quantity}`.
pub async fn insert_update(
    tx: &mut Tx,
    id: &str,
    supplier_order_id: &str,
    order_id: &str,
    changes: &[&str],
    lines: &Value,
    status: UpdateStatus,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into supplier_order_updates (id, supplier_order_id, order_id, changes, lines, status, created_at_ms) \
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(supplier_order_id)
    .bind(order_id)
    .bind(serde_json::json!(changes).to_string())
    .bind(lines.to_string())
    .bind(status.as_str())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The changes of a supplier order waiting for its push to be answered, oldest first.
pub async fn waiting_updates(tx: &mut Tx, supplier_order_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select id from supplier_order_updates where supplier_order_id = $1 and status = 'waiting' order by created_at_ms, id",
    )
    .bind(supplier_order_id)
    .fetch_all(&mut **tx)
    .await
}

/// A change sent to a supplier.
pub async fn get_update(tx: &mut Tx, id: &str) -> anyhow::Result<Option<Update>> {
    let Some(r) = sqlx::query(
        "select id, supplier_order_id, order_id, changes, lines, status, created_at_ms from supplier_order_updates where id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let lines: Vec<Value> = serde_json::from_str(&r.try_get::<String, _>("lines")?)?;
    Ok(Some(Update {
        id: r.try_get("id")?,
        supplier_order_id: r.try_get("supplier_order_id")?,
        order_id: r.try_get("order_id")?,
        changes: serde_json::from_str(&r.try_get::<String, _>("changes")?)?,
        lines: lines
            .iter()
            .filter_map(|l| {
                Some((
                    l["external_line_id"].as_str()?.to_string(),
                    u32::try_from(l["quantity"].as_u64()?).ok()?,
                ))
            })
            .collect(),
        status: r.try_get("status")?,
        created_at_ms: r.try_get("created_at_ms")?,
    }))
}

/// A later change of the same supplier order that is not dropped, if there is one.
pub async fn newer_update(tx: &mut Tx, update: &Update) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "select id from supplier_order_updates where supplier_order_id = $1 and status <> 'dropped' \
         and (created_at_ms > $2 or (created_at_ms = $2 and id > $3)) order by created_at_ms desc, id desc limit 1",
    )
    .bind(&update.supplier_order_id)
    .bind(update.created_at_ms)
    .bind(&update.id)
    .fetch_optional(&mut **tx)
    .await
}

/// Moves a change by compare-and-set; false when it was not in a status the move is allowed
/// from (answered already).
pub async fn set_update_status(
    tx: &mut Tx,
    id: &str,
    to: UpdateStatus,
    reason: Option<&str>,
) -> sqlx::Result<bool> {
    let from = to
        .allowed_from()
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let moved = sqlx::query(AssertSqlSafe(format!(
        "update supplier_order_updates set status = $1, reason = $2, answered_at_ms = $3 where id = $4 and status in ({from})"
    )))
    .bind(to.as_str())
    .bind(reason)
    .bind(now_ms())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(moved.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_keeps_the_promises() {
        use SoStatus::*;
        for to in SoStatus::ALL {
            for from in to.allowed_from() {
                // Nothing leaves a cancellation or a fail-over except an operator's revival of
                // a dead push (which checks that no other supplier order took its lines), and a
                // cancellation that turns out to need the supplier's (a push was in flight).
                assert!(
                    !matches!(from, Rejected | TimedOut)
                        && (*from != Cancelled || to == CancelRequested)
                        && (*from != Undeliverable || to == Pending),
                    "{from:?} → {to:?} would bring back a supplier order that lost its lines"
                );
            }
        }
        // An acknowledgement never overwrites a shipment or a fail-over (a supplier's callback
        // narrows it to Pending and Submitted: not over a cancellation request either); a
        // deadline only fails over what is still unacknowledged.
        assert_eq!(
            Accepted.allowed_from(),
            &[Pending, Held, Submitted, CancelRequested]
        );
        assert_eq!(TimedOut.allowed_from(), &[Submitted]);
        // Nothing is shipped from a status whose lines went elsewhere or are being cancelled.
        for from in Shipped.allowed_from() {
            assert!(from.is_live() && *from != CancelRequested && *from != Held);
        }
        // Pushed from Pending, or found pushed after a hold came during the push.
        assert_eq!(Submitted.allowed_from(), &[Pending, Held]);
        // Every status is reachable from Pending.
        let mut reached = std::collections::BTreeSet::from([Pending]);
        loop {
            let before = reached.len();
            for to in SoStatus::ALL {
                if to.allowed_from().iter().any(|f| reached.contains(f)) {
                    reached.insert(to);
                }
            }
            if reached.len() == before {
                break;
            }
        }
        assert_eq!(reached.len(), SoStatus::ALL.len());
    }

    #[test]
    fn names_round_trip() {
        for s in SoStatus::ALL {
            assert_eq!(SoStatus::parse(s.as_str()), Some(s));
        }
    }
}
