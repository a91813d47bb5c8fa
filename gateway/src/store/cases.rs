//! After-sales cases, the history of each, and the notes that send defective goods back to a
//! supplier. This module owns the `cases`, `case_events` and `return_notes` tables. A case's
//! kinds, states and the moves between them are the after-sales state machine's
//! (`aftersales::machine`); here they are the names it stores.

use crate::db::{Db, Tx, new_id, now_ms};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

const COLUMNS: &str = "id, order_id, kind, state, return_kind, reason, note, source, external_id, lines, evidence, currency, \
     refund_requested_minor, refunded_minor, freight, supplier_order_id, shipment_id, return_authorization, return_address, \
     resellable, defect, replacement_supplier_order_id, opened_at_ms, updated_at_ms, closed_at_ms";

/// A case as stored: its kind, state, return kind, reason and source by their stored names,
/// its lines, evidence, freight and return address as JSON text.
#[derive(Debug)]
pub struct CaseRow {
    pub id: String,
    pub order_id: String,
    pub kind: String,
    pub state: String,
    pub return_kind: Option<String>,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub source: String,
    pub external_id: Option<String>,
    pub lines: String,
    pub evidence: String,
    pub currency: String,
    pub refund_requested_minor: Option<i64>,
    pub refunded_minor: i64,
    pub freight: String,
    pub supplier_order_id: Option<String>,
    pub shipment_id: Option<String>,
    pub return_authorization: Option<String>,
    pub return_address: Option<String>,
    pub resellable: Option<bool>,
    pub defect: Option<String>,
    pub replacement_supplier_order_id: Option<String>,
    pub opened_at_ms: i64,
    pub updated_at_ms: i64,
    pub closed_at_ms: Option<i64>,
}

fn from_row(r: &AnyRow) -> sqlx::Result<CaseRow> {
    Ok(CaseRow {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        kind: r.try_get("kind")?,
        state: r.try_get("state")?,
        return_kind: r.try_get("return_kind")?,
        reason: r.try_get("reason")?,
        note: r.try_get("note")?,
        source: r.try_get("source")?,
        external_id: r.try_get("external_id")?,
        lines: r.try_get("lines")?,
        evidence: r.try_get("evidence")?,
        currency: r.try_get("currency")?,
        refund_requested_minor: r.try_get("refund_requested_minor")?,
        refunded_minor: r.try_get("refunded_minor")?,
        freight: r.try_get("freight")?,
        supplier_order_id: r.try_get("supplier_order_id")?,
        shipment_id: r.try_get("shipment_id")?,
        return_authorization: r.try_get("return_authorization")?,
        return_address: r.try_get("return_address")?,
        resellable: r.try_get::<Option<i64>, _>("resellable")?.map(|v| v != 0),
        defect: r.try_get("defect")?,
        replacement_supplier_order_id: r.try_get("replacement_supplier_order_id")?,
        opened_at_ms: r.try_get("opened_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        closed_at_ms: r.try_get("closed_at_ms")?,
    })
}

/// A case, read inside a transaction.
pub async fn get_in(tx: &mut Tx, id: &str) -> sqlx::Result<Option<CaseRow>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "select {COLUMNS} from cases where id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Cases by state and order (empty: any), only those not closed when `open`, newest first,
/// at most 500.
pub async fn list(db: &Db, state: &str, order_id: &str, open: bool) -> sqlx::Result<Vec<CaseRow>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select {COLUMNS} from cases where ($1 = '' or state = $1) and ($2 = '' or order_id = $2) and ($3 = 0 or state <> 'closed') \
         order by opened_at_ms desc, id desc limit 500"
    )))
    .bind(state)
    .bind(order_id)
    .bind(i64::from(open))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// A case to store, its names and JSON text as [`CaseRow`] has them; it starts with nothing
/// refunded and no return authorization, inspection or replacement.
pub struct NewCaseRow<'a> {
    pub id: &'a str,
    pub order_id: &'a str,
    pub kind: &'a str,
    pub state: &'a str,
    pub return_kind: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub note: Option<&'a str>,
    pub source: &'a str,
    pub external_id: Option<&'a str>,
    pub lines: &'a str,
    pub evidence: &'a str,
    pub currency: &'a str,
    pub refund_requested_minor: Option<i64>,
    pub freight: &'a str,
    pub supplier_order_id: Option<&'a str>,
    pub shipment_id: Option<&'a str>,
    pub opened_at_ms: i64,
}

/// Stores a new case.
pub async fn insert(tx: &mut Tx, case: NewCaseRow<'_>) -> sqlx::Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "insert into cases ({COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         null, null, null, null, null, $18, $18, null)"
    )))
    .bind(case.id)
    .bind(case.order_id)
    .bind(case.kind)
    .bind(case.state)
    .bind(case.return_kind)
    .bind(case.reason)
    .bind(case.note)
    .bind(case.source)
    .bind(case.external_id)
    .bind(case.lines)
    .bind(case.evidence)
    .bind(case.currency)
    .bind(case.refund_requested_minor)
    .bind(0i64)
    .bind(case.freight)
    .bind(case.supplier_order_id)
    .bind(case.shipment_id)
    .bind(case.opened_at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The order a case is about.
pub async fn order_of(tx: &mut Tx, case_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select order_id from cases where id = $1")
        .bind(case_id)
        .fetch_optional(&mut **tx)
        .await
}

/// The case of an order that another party's request (its external id) opened.
pub async fn find_by_external_id(
    tx: &mut Tx,
    order_id: &str,
    external_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select id from cases where order_id = $1 and external_id = $2")
        .bind(order_id)
        .bind(external_id)
        .fetch_optional(&mut **tx)
        .await
}

/// What an order's cases promise or paid back: each case's refund asked, or what it refunded
/// when more; nothing for a case rejected, or closed with nothing refunded.
pub async fn committed_of_order(tx: &mut Tx, order_id: &str) -> sqlx::Result<i64> {
    let committed: Option<i64> = sqlx::query_scalar(
        "select cast(sum(case when state in ('rejected', 'closed') and refunded_minor = 0 then 0 \
                       when refunded_minor > coalesce(refund_requested_minor, 0) then refunded_minor \
                       else coalesce(refund_requested_minor, 0) end) as bigint) \
         from cases where order_id = $1 and state <> 'rejected'",
    )
    .bind(order_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(committed.unwrap_or(0))
}

/// What an order's cases refunded.
pub async fn refunded_of_order(tx: &mut Tx, order_id: &str) -> sqlx::Result<i64> {
    let refunded: Option<i64> = sqlx::query_scalar(
        "select cast(sum(refunded_minor) as bigint) from cases where order_id = $1",
    )
    .bind(order_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(refunded.unwrap_or(0))
}

/// What an order's other cases than `case_id` refunded.
pub async fn refunded_of_order_but(
    tx: &mut Tx,
    order_id: &str,
    case_id: &str,
) -> sqlx::Result<i64> {
    let refunded: Option<i64> = sqlx::query_scalar(
        "select cast(sum(refunded_minor) as bigint) from cases where order_id = $1 and id <> $2",
    )
    .bind(order_id)
    .bind(case_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(refunded.unwrap_or(0))
}

/// Adds money the storefront paid back to what a case refunded, the case's state unchanged.
pub async fn add_storefront_refund(tx: &mut Tx, case_id: &str, amount: i64) -> sqlx::Result<()> {
    sqlx::query(
        "update cases set refunded_minor = refunded_minor + $1, updated_at_ms = $2 where id = $3",
    )
    .bind(amount)
    .bind(now_ms())
    .bind(case_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Adds a refund to what a case refunded (its `refund` action, which also moves its state).
pub async fn add_refund(tx: &mut Tx, case_id: &str, amount: i64) -> sqlx::Result<()> {
    sqlx::query("update cases set refunded_minor = refunded_minor + $1 where id = $2")
        .bind(amount)
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records what the inspection of a case's goods found.
pub async fn set_inspection(
    tx: &mut Tx,
    case_id: &str,
    resellable: bool,
    defect: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query("update cases set resellable = $1, defect = $2 where id = $3")
        .bind(i64::from(resellable))
        .bind(defect)
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Moves a case from the state `from` to `to` (by their stored names) as of `at_ms`, a
/// compare-and-set: whether it moved (false: the case is no longer in `from`). `closed` also
/// sets when it closed. The caller checked the move against the case's machine.
pub async fn set_state(
    tx: &mut Tx,
    case_id: &str,
    from: &str,
    to: &str,
    at_ms: i64,
) -> sqlx::Result<bool> {
    let moved = sqlx::query("update cases set state = $1, updated_at_ms = $2, closed_at_ms = case when $1 = 'closed' then $2 else closed_at_ms end where id = $3 and state = $4")
        .bind(to)
        .bind(at_ms)
        .bind(case_id)
        .bind(from)
        .execute(&mut **tx)
        .await?;
    Ok(moved.rows_affected() > 0)
}

/// Records the supplier order that sends a case's goods again (a reship, an exchange's
/// replacement).
pub async fn set_replacement(
    tx: &mut Tx,
    case_id: &str,
    supplier_order_id: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query("update cases set replacement_supplier_order_id = $1 where id = $2")
        .bind(supplier_order_id)
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records the supplier's return authorization and where the goods go (JSON text).
pub async fn set_return_authorization(
    tx: &mut Tx,
    case_id: &str,
    rma: Option<&str>,
    address: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query("update cases set return_authorization = $1, return_address = $2, updated_at_ms = $3 where id = $4")
        .bind(rma)
        .bind(address)
        .bind(now_ms())
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The newest cancel case of an order waiting for its supplier orders to stop.
pub async fn intercepting_cancel(tx: &mut Tx, order_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "select id from cases where order_id = $1 and kind = 'cancel' and state = 'intercepting' order by opened_at_ms desc limit 1",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await
}

/// The newest case of an order whose goods come back and that is not closed.
pub async fn open_goods_back(tx: &mut Tx, order_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "select id from cases where order_id = $1 \
         and kind in ('return_refund', 'exchange', 'warranty_repair', 'paid_maintenance') and state <> 'closed' \
         order by opened_at_ms desc limit 1",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await
}

/// The shipped case a supplier order sends goods again for.
pub async fn shipped_replacement(
    tx: &mut Tx,
    supplier_order_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "select id from cases where replacement_supplier_order_id = $1 and state = 'shipped'",
    )
    .bind(supplier_order_id)
    .fetch_optional(&mut **tx)
    .await
}

/// The approved refunds not paid yet, as `(case id, order id)`, oldest first.
pub async fn awaiting_refund(tx: &mut Tx) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query(
        "select id, order_id from cases where refunded_minor = 0 and refund_requested_minor > 0 \
         and state in ('approved', 'intercepted', 'inspected') order by opened_at_ms",
    )
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("id")?, r.try_get("order_id")?)))
    .collect()
}

/// Adds an action to a case's history: the states (by their stored names) it moved from and
/// to, who acted, and what it recorded (JSON text).
pub async fn record_event(
    tx: &mut Tx,
    case_id: &str,
    action: &str,
    from: Option<&str>,
    to: &str,
    actor: &str,
    detail: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into case_events (id, case_id, action, from_state, to_state, actor, detail, at_ms) values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id("cev"))
    .bind(case_id)
    .bind(action)
    .bind(from)
    .bind(to)
    .bind(actor)
    .bind(detail)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One action of a case's history.
pub struct CaseEvent {
    pub action: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub actor: String,
    /// JSON text.
    pub detail: String,
    pub at_ms: i64,
}

/// A case's history, oldest first.
pub async fn history_of(tx: &mut Tx, case_id: &str) -> sqlx::Result<Vec<CaseEvent>> {
    sqlx::query(
        "select action, from_state, to_state, actor, detail, at_ms from case_events where case_id = $1 order by at_ms, id",
    )
    .bind(case_id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| {
        Ok(CaseEvent {
            action: r.try_get("action")?,
            from_state: r.try_get("from_state")?,
            to_state: r.try_get("to_state")?,
            actor: r.try_get("actor")?,
            detail: r.try_get("detail")?,
            at_ms: r.try_get("at_ms")?,
        })
    })
    .collect()
}

/// A note sending defective goods back to their supplier.
pub struct NewReturnNote<'a> {
    pub id: &'a str,
    pub case_id: &'a str,
    pub supplier_connection_id: &'a str,
    /// The case's lines, as JSON text.
    pub lines: &'a str,
    pub defect: Option<&'a str>,
    /// The goods' cost deducted from the supplier's account, when known.
    pub deduction_minor: Option<i64>,
    pub currency: Option<&'a str>,
}

/// Stores a return-to-supplier note.
pub async fn insert_return_note(tx: &mut Tx, note: NewReturnNote<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "insert into return_notes (id, case_id, supplier_connection_id, lines, defect, deduction_minor, currency, created_at_ms) \
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(note.id)
    .bind(note.case_id)
    .bind(note.supplier_connection_id)
    .bind(note.lines)
    .bind(note.defect)
    .bind(note.deduction_minor)
    .bind(note.currency)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A return-to-supplier note as stored.
pub struct ReturnNote {
    pub id: String,
    /// JSON text.
    pub lines: String,
    pub defect: Option<String>,
    pub deduction_minor: Option<i64>,
    pub currency: Option<String>,
    pub created_at_ms: i64,
}

/// A case's return-to-supplier notes, oldest first.
pub async fn return_notes_of(tx: &mut Tx, case_id: &str) -> sqlx::Result<Vec<ReturnNote>> {
    sqlx::query(
        "select id, lines, defect, deduction_minor, currency, created_at_ms from return_notes where case_id = $1 order by created_at_ms",
    )
    .bind(case_id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| {
        Ok(ReturnNote {
            id: r.try_get("id")?,
            lines: r.try_get("lines")?,
            defect: r.try_get("defect")?,
            deduction_minor: r.try_get("deduction_minor")?,
            currency: r.try_get("currency")?,
            created_at_ms: r.try_get("created_at_ms")?,
        })
    })
    .collect()
}
