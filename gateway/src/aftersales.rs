//! After-sales: what happens after the order (handbooks 001, 002, 004). A case (cancel,
//! refund, compensation, return, exchange, reship, repair) is opened by the storefront (its
//! refund and return webhooks), the operator (the API), a supplier, or a carrier event (a
//! parcel returned to its sender or refused becomes an in-transit return; a lost one a reship).
//! Each kind moves through its own state machine ([`machine`]); every action is kept in the
//! case's history. Actions become durable jobs to the right party: cancellations and return
//! authorizations to the supplier that shipped, refunds through the storefront's plugin,
//! reships and replacements through the routing engine. Refunds never exceed what was paid, over
//! all the cases of an order. The service clocks ([`clocks`]) open tasks in the exception queue
//! when a handbook's time runs out. This module owns the `cases`, `case_events` and
//! `return_notes` tables.

pub mod clocks;
pub mod machine;

pub use machine::{Action, CaseKind, CaseState};

use crate::app::AppState;
use crate::db::{Tx, new_id, now_ms};
use crate::dispatch::{callee, outcome_of};
use crate::error::{ApiError, ApiResult};
use crate::jobs::{self, ClaimedJob, JobKind, NewJob, Outcome};
use crate::orders::{self, OrderStatus, StoredOrder};
use crate::policy::{self, AfterSalesPolicy, Freight, Scope};
use crate::routing;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use daifa_plugin_host::channel::{CaseRequest, RefundRequest, ReturnDecision};
use daifa_plugin_host::supplier::{CancelRequest, ReturnRequest};
use daifa_plugin_host::{LineQuantity, Money, SupplierOrderRef, SupplierOrderStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

/// How goods come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnKind {
    CustomerReturn,
    InTransitReturn,
    RefusedParcel,
}

/// Why a case was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Quality,
    Damaged,
    WrongItem,
    WrongQuantity,
    NotReceived,
    Lost,
    CustomsHeld,
    ChangedMind,
    LateDelivery,
    NotAsDescribed,
    Other,
}

impl Reason {
    /// A quality problem: the shop pays the freight, and an exchange is allowed (handbook 001).
    pub fn is_quality(self) -> bool {
        matches!(
            self,
            Self::Quality | Self::Damaged | Self::WrongItem | Self::NotAsDescribed
        )
    }
}

/// Who opened a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Storefront,
    Operator,
    Supplier,
    Carrier,
}

/// A quantity of one order line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseLine {
    pub external_line_id: String,
    pub quantity: u32,
}

/// A case as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub id: String,
    pub order_id: String,
    pub kind: CaseKind,
    pub state: CaseState,
    pub return_kind: Option<ReturnKind>,
    pub reason: Option<Reason>,
    pub note: Option<String>,
    pub source: Source,
    pub external_id: Option<String>,
    pub lines: Vec<CaseLine>,
    pub evidence: Vec<String>,
    pub currency: String,
    /// What the case asks to refund, and what was refunded, in minor units.
    pub refund_requested_minor: Option<i64>,
    pub refunded_minor: i64,
    pub freight: Option<Freight>,
    pub supplier_order_id: Option<String>,
    pub shipment_id: Option<String>,
    pub return_authorization: Option<String>,
    pub return_address: Option<Value>,
    pub resellable: Option<bool>,
    pub defect: Option<String>,
    pub replacement_supplier_order_id: Option<String>,
    pub opened_at_ms: i64,
    pub updated_at_ms: i64,
    pub closed_at_ms: Option<i64>,
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    Ok(serde_json::from_value(Value::String(text.to_string()))?)
}

const COLUMNS: &str = "id, order_id, kind, state, return_kind, reason, note, source, external_id, lines, evidence, currency, \
     refund_requested_minor, refunded_minor, freight, supplier_order_id, shipment_id, return_authorization, return_address, \
     resellable, defect, replacement_supplier_order_id, opened_at_ms, updated_at_ms, closed_at_ms";

fn from_row(r: &AnyRow) -> anyhow::Result<Case> {
    let freight: String = r.try_get("freight")?;
    Ok(Case {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        kind: parse(&r.try_get::<String, _>("kind")?)?,
        state: parse(&r.try_get::<String, _>("state")?)?,
        return_kind: r
            .try_get::<Option<String>, _>("return_kind")?
            .map(|s| parse(&s))
            .transpose()?,
        reason: r
            .try_get::<Option<String>, _>("reason")?
            .map(|s| parse(&s))
            .transpose()?,
        note: r.try_get("note")?,
        source: parse(&r.try_get::<String, _>("source")?)?,
        external_id: r.try_get("external_id")?,
        lines: serde_json::from_str(&r.try_get::<String, _>("lines")?)?,
        evidence: serde_json::from_str(&r.try_get::<String, _>("evidence")?)?,
        currency: r.try_get("currency")?,
        refund_requested_minor: r.try_get("refund_requested_minor")?,
        refunded_minor: r.try_get("refunded_minor")?,
        freight: serde_json::from_str(&freight).ok(),
        supplier_order_id: r.try_get("supplier_order_id")?,
        shipment_id: r.try_get("shipment_id")?,
        return_authorization: r.try_get("return_authorization")?,
        return_address: r
            .try_get::<Option<String>, _>("return_address")?
            .and_then(|s| serde_json::from_str(&s).ok()),
        resellable: r.try_get::<Option<i64>, _>("resellable")?.map(|v| v != 0),
        defect: r.try_get("defect")?,
        replacement_supplier_order_id: r.try_get("replacement_supplier_order_id")?,
        opened_at_ms: r.try_get("opened_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        closed_at_ms: r.try_get("closed_at_ms")?,
    })
}

/// A case, read inside a transaction.
pub async fn get_in(tx: &mut Tx, id: &str) -> anyhow::Result<Option<Case>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from cases where id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Why a case cannot be opened or moved: the caller's error (422, 409) or the gateway's.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for CaseError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl From<CaseError> for ApiError {
    fn from(e: CaseError) -> Self {
        match e {
            CaseError::NotFound(m) => ApiError::NotFound(m),
            CaseError::Unprocessable(m) => ApiError::Unprocessable(m),
            CaseError::Conflict(m) => ApiError::Conflict(m),
            CaseError::Internal(e) => ApiError::Internal(e),
        }
    }
}

/// A case to open.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    pub order_id: String,
    pub kind: CaseKind,
    #[serde(default)]
    pub return_kind: Option<ReturnKind>,
    #[serde(default)]
    pub reason: Option<Reason>,
    #[serde(default)]
    pub note: Option<String>,
    /// The lines concerned; empty: every line of the order.
    #[serde(default)]
    pub lines: Vec<CaseLine>,
    /// Links to photos, an invoice.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// The refund asked for, in the order's currency (minor units); default: the lines' price
    /// (for a cancellation, the order's total).
    #[serde(default)]
    pub refund_minor: Option<i64>,
    /// The shipment the goods went out in, when known.
    #[serde(default)]
    pub shipment_id: Option<String>,
    #[serde(skip)]
    pub source: Option<Source>,
    #[serde(skip)]
    pub external_id: Option<String>,
    /// The storefront already paid this much.
    #[serde(skip)]
    pub refunded_minor: Option<i64>,
}

impl NewCase {
    pub fn new(order_id: &str, kind: CaseKind, source: Source) -> Self {
        Self {
            order_id: order_id.into(),
            kind,
            return_kind: None,
            reason: None,
            note: None,
            lines: Vec::new(),
            evidence: Vec::new(),
            refund_minor: None,
            shipment_id: None,
            source: Some(source),
            external_id: None,
            refunded_minor: None,
        }
    }
}

/// What was paid, and what is promised or paid back already over the order's cases.
async fn money_of(tx: &mut Tx, order: &StoredOrder) -> anyhow::Result<(i64, i64)> {
    let committed: Option<i64> = sqlx::query_scalar(
        "select cast(sum(case when state in ('rejected', 'closed') and refunded_minor = 0 then 0 \
                       when refunded_minor > coalesce(refund_requested_minor, 0) then refunded_minor \
                       else coalesce(refund_requested_minor, 0) end) as bigint) \
         from cases where order_id = $1 and state <> 'rejected'",
    )
    .bind(&order.id)
    .fetch_one(&mut **tx)
    .await?;
    Ok((order.total_minor, committed.unwrap_or(0)))
}

/// Serializes the after-sales of one order until the transaction ends: two actions at once (an
/// operator and a storefront webhook, two gateway replicas) would otherwise both read the case
/// in the same state, or both count the same refunds, and both go through. On PostgreSQL the
/// order's row lock makes the second wait and then read what the first wrote; on SQLite the
/// write takes the database's write lock at once, before anything is read.
async fn lock_order(tx: &mut Tx, order_id: &str) -> sqlx::Result<()> {
    sqlx::query("update orders set id = id where id = $1")
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records money the storefront paid back for a case (its own refund, made in its admin),
/// without moving the case: what is left to refund through the storefront shrinks by it.
/// Refused when it would take the order's refunds above what was paid.
async fn refunded_on_storefront(
    tx: &mut Tx,
    case_id: &str,
    amount: i64,
    actor: &str,
) -> Result<(), CaseError> {
    let case = get_in(tx, case_id)
        .await?
        .ok_or_else(|| CaseError::NotFound(format!("no case `{case_id}`")))?;
    let paid: i64 = sqlx::query_scalar("select total_minor from orders where id = $1")
        .bind(&case.order_id)
        .fetch_one(&mut **tx)
        .await?;
    let refunded: Option<i64> = sqlx::query_scalar(
        "select cast(sum(refunded_minor) as bigint) from cases where order_id = $1",
    )
    .bind(&case.order_id)
    .fetch_one(&mut **tx)
    .await?;
    let refunded = refunded.unwrap_or(0);
    if amount < 0 || refunded + amount > paid {
        return Err(CaseError::Conflict(format!(
            "a storefront refund of {amount} would take the order's refunds above what was paid ({refunded} of {paid})"
        )));
    }
    sqlx::query(
        "update cases set refunded_minor = refunded_minor + $1, updated_at_ms = $2 where id = $3",
    )
    .bind(amount)
    .bind(now_ms())
    .bind(case_id)
    .execute(&mut **tx)
    .await?;
    history(
        tx,
        case_id,
        "refunded_on_storefront",
        Some(case.state),
        case.state,
        actor,
        json!({ "amount_minor": amount }),
    )
    .await?;
    Ok(())
}

/// When the order was delivered: its last shipment's delivery.
async fn delivered_at(tx: &mut Tx, order_id: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("select max(delivered_at_ms) from shipments where order_id = $1")
        .bind(order_id)
        .fetch_one(&mut **tx)
        .await
}

/// The category of the order's first line with one, for the after-sales policy's scope.
async fn scope_of(tx: &mut Tx, order: &StoredOrder) -> anyhow::Result<Scope> {
    let channel: Option<String> = sqlx::query_scalar("select name from connections where id = $1")
        .bind(&order.connection_id)
        .fetch_optional(&mut **tx)
        .await?;
    let skus: Vec<String> = order
        .canonical_order()?
        .lines
        .iter()
        .map(|l| l.storefront_sku.clone())
        .collect();
    let mut category = None;
    for sku in skus {
        category = sqlx::query_scalar::<_, Option<String>>(
            "select category from products where channel_connection_id = $1 and storefront_sku = $2",
        )
        .bind(&order.connection_id)
        .bind(&sku)
        .fetch_optional(&mut **tx)
        .await?
        .flatten();
        if category.is_some() {
            break;
        }
    }
    Ok(Scope { channel, category })
}

/// The after-sales policy for an order.
pub async fn policy_for(tx: &mut Tx, order: &StoredOrder) -> anyhow::Result<AfterSalesPolicy> {
    let scope = scope_of(tx, order).await?;
    policy::in_scope(tx, &scope).await
}

fn days(ms: i64) -> i64 {
    ms / 86_400_000
}

/// Opens a case inside the caller's transaction: checks the lines, the windows (for cases the
/// operator opens) and that refunds stay within what was paid; links the supplier order and
/// shipment that carried the goods; starts the case's clocks. A storefront request seen before
/// (the same external id) returns the case it opened.
pub async fn open(tx: &mut Tx, new: NewCase, actor: &str) -> Result<Case, CaseError> {
    let source = new.source.unwrap_or(Source::Operator);
    lock_order(tx, &new.order_id).await?;
    let order = orders::get_in(tx, &new.order_id)
        .await?
        .ok_or_else(|| CaseError::NotFound(format!("no order `{}`", new.order_id)))?;
    if let Some(external) = &new.external_id {
        let existing: Option<String> =
            sqlx::query_scalar("select id from cases where order_id = $1 and external_id = $2")
                .bind(&order.id)
                .bind(external)
                .fetch_optional(&mut **tx)
                .await?;
        if let Some(id) = existing {
            return get_in(tx, &id)
                .await?
                .ok_or_else(|| CaseError::Internal(anyhow::anyhow!("case {id} vanished")));
        }
    }
    let canonical = order.canonical_order()?;
    let lines: Vec<CaseLine> = if new.lines.is_empty() {
        canonical
            .lines
            .iter()
            .filter(|l| l.quantity > 0)
            .map(|l| CaseLine {
                external_line_id: l.external_line_id.clone(),
                quantity: l.quantity,
            })
            .collect()
    } else {
        new.lines.clone()
    };
    let mut goods_minor: i64 = 0;
    for line in &lines {
        let Some(ordered) = canonical
            .lines
            .iter()
            .find(|l| l.external_line_id == line.external_line_id)
        else {
            return Err(CaseError::Unprocessable(format!(
                "the order has no line `{}`",
                line.external_line_id
            )));
        };
        if line.quantity == 0 || line.quantity > ordered.quantity {
            return Err(CaseError::Unprocessable(format!(
                "line `{}`: {} of {} ordered",
                line.external_line_id, line.quantity, ordered.quantity
            )));
        }
        goods_minor += ordered.unit_price.amount_minor * i64::from(line.quantity);
    }
    let policy = policy_for(tx, &order).await?;
    let delivered = delivered_at(tx, &order.id).await?;
    let now = now_ms();
    if source == Source::Operator
        && let Some(delivered) = delivered
    {
        let (window, what) = match new.kind {
            CaseKind::ReturnRefund => (Some(policy.return_window), "return"),
            CaseKind::Exchange => (Some(policy.exchange_window), "exchange"),
            CaseKind::WarrantyRepair => (Some(policy.warranty_window), "warranty"),
            _ => (None, ""),
        };
        if let Some(window) = window
            && now - delivered > crate::db::ms(window)
        {
            let hint = if new.kind == CaseKind::WarrantyRepair {
                " (open a paid maintenance instead)"
            } else {
                ""
            };
            return Err(CaseError::Unprocessable(format!(
                "the {what} window of {} days after delivery has passed: delivered {} days ago{hint}",
                days(crate::db::ms(window)),
                days(now - delivered)
            )));
        }
    }
    if new.kind == CaseKind::Exchange && !new.reason.is_some_and(Reason::is_quality) {
        return Err(CaseError::Unprocessable(
            "an exchange is for quality problems only (reason quality, damaged, wrong_item or not_as_described)".into(),
        ));
    }
    if new.kind == CaseKind::Cancel && matches!(order.status.as_str(), "cancelled") {
        return Err(CaseError::Conflict("the order is cancelled already".into()));
    }
    let refund_requested = if new.kind.refunds() {
        let default = if new.kind == CaseKind::Cancel {
            order.total_minor
        } else {
            goods_minor
        };
        match new.refund_minor.or(new.refunded_minor) {
            Some(asked) => Some(asked),
            // The lines' prices, but never more than what is left of what was paid (discounts
            // make the lines worth more than the total).
            None => {
                let (paid, committed) = money_of(tx, &order).await?;
                Some(default.min(paid - committed).max(0))
            }
        }
    } else {
        None
    };
    if let Some(r) = refund_requested {
        if r < 0 {
            return Err(CaseError::Unprocessable("a refund is not negative".into()));
        }
        let (paid, committed) = money_of(tx, &order).await?;
        if r + committed > paid {
            return Err(CaseError::Conflict(format!(
                "refunds would exceed what was paid: {} already refunded or promised of {paid}, {r} more asked (minor units of {})",
                committed, order.currency
            )));
        }
    }
    let freight = new.kind.goods_come_back().then(|| {
        let key = match new.kind {
            CaseKind::ReturnRefund if new.reason.is_some_and(Reason::is_quality) => {
                "return_quality"
            }
            CaseKind::ReturnRefund => "return",
            other => match other {
                CaseKind::Exchange => "exchange",
                CaseKind::WarrantyRepair => "warranty_repair",
                _ => "paid_maintenance",
            },
        };
        policy.freight.get(key).copied()
    });
    // The supplier order and shipment that carried the first line.
    let first = lines
        .first()
        .map(|l| l.external_line_id.clone())
        .unwrap_or_default();
    let supplier_order_id: Option<String> = sqlx::query_scalar(
        "select s.id from supplier_orders s join supplier_order_lines l on l.supplier_order_id = s.id \
         where s.order_id = $1 and l.external_line_id = $2 and s.status in ('pending', 'submitted', 'accepted', 'shipped') \
         order by s.created_at_ms desc limit 1",
    )
    .bind(&order.id)
    .bind(&first)
    .fetch_optional(&mut **tx)
    .await?;
    let shipment_id = match &new.shipment_id {
        Some(s) => Some(s.clone()),
        None => match &supplier_order_id {
            Some(so) => {
                sqlx::query_scalar(
                    "select id from shipments where supplier_order_id = $1 order by created_at_ms desc limit 1",
                )
                .bind(so)
                .fetch_optional(&mut **tx)
                .await?
            }
            None => None,
        },
    };
    let return_kind = new.return_kind.or(new
        .kind
        .goods_come_back()
        .then_some(ReturnKind::CustomerReturn));
    let id = new_id("case");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "insert into cases ({COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         null, null, null, null, null, $18, $18, null)"
    )))
    .bind(&id)
    .bind(&order.id)
    .bind(machine::name(&new.kind))
    .bind(machine::name(&machine::initial(new.kind)))
    .bind(return_kind.map(|k| machine::name(&k)))
    .bind(new.reason.map(|r| machine::name(&r)))
    .bind(&new.note)
    .bind(machine::name(&source))
    .bind(&new.external_id)
    .bind(serde_json::to_string(&lines).map_err(anyhow::Error::from)?)
    .bind(serde_json::to_string(&new.evidence).map_err(anyhow::Error::from)?)
    .bind(&order.currency)
    .bind(refund_requested)
    .bind(0i64)
    .bind(
        freight
            .flatten()
            .map(|f| serde_json::to_string(&f))
            .transpose()
            .map_err(anyhow::Error::from)?
            .unwrap_or_else(|| "{}".into()),
    )
    .bind(&supplier_order_id)
    .bind(&shipment_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    history(
        tx,
        &id,
        "open",
        None,
        CaseState::Requested,
        actor,
        json!({ "source": source, "note": new.note }),
    )
    .await?;
    orders::record_event(
        tx,
        &order.id,
        "case.opened",
        json!({ "case_id": id, "kind": new.kind, "source": source, "reason": new.reason, "return_kind": return_kind }),
    )
    .await?;
    clocks::on_case_opened(tx, &policy, &id, &order.id, new.kind, now).await?;
    tracing::info!(case_id = %id, order_id = %order.id, kind = %new.kind, source = ?source, "case opened");
    // A refund the storefront already paid: recorded, and the case is done.
    if let Some(paid) = new.refunded_minor.filter(|_| {
        matches!(
            new.kind,
            CaseKind::RefundOnly | CaseKind::PartialCompensation
        )
    }) {
        act(tx, &id, ActionInput::of(Action::Approve), actor).await?;
        let mut refund = ActionInput::of(Action::Refund);
        refund.amount_minor = Some(paid);
        refund.note = Some("refunded on the storefront".into());
        act(tx, &id, refund, actor).await?;
    } else if let Some(paid) = new.refunded_minor.filter(|p| *p > 0) {
        // Paid on the storefront with goods still to come back (a return refunded before it
        // arrived): recorded now, so that nothing is paid twice when the case gets there.
        refunded_on_storefront(tx, &id, paid, actor).await?;
    }
    get_in(tx, &id)
        .await?
        .ok_or_else(|| CaseError::Internal(anyhow::anyhow!("case {id} vanished")))
}

async fn history(
    tx: &mut Tx,
    case_id: &str,
    action: &str,
    from: Option<CaseState>,
    to: CaseState,
    actor: &str,
    detail: Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into case_events (id, case_id, action, from_state, to_state, actor, detail, at_ms) values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id("cev"))
    .bind(case_id)
    .bind(action)
    .bind(from.map(|s| machine::name(&s)))
    .bind(machine::name(&to))
    .bind(actor)
    .bind(detail.to_string())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// An action on a case, with what it carries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionInput {
    pub action: Action,
    /// `refund`: the amount paid back (minor units); default what the case asked.
    #[serde(default)]
    pub amount_minor: Option<i64>,
    /// `inspect`: whether the goods are as new.
    #[serde(default)]
    pub resellable: Option<bool>,
    /// `inspect`: the defect found.
    #[serde(default)]
    pub defect: Option<String>,
    /// `return_shipped`: the return parcel's tracking number.
    #[serde(default)]
    pub tracking_number: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

impl ActionInput {
    pub fn of(action: Action) -> Self {
        Self {
            action,
            amount_minor: None,
            resellable: None,
            defect: None,
            tracking_number: None,
            note: None,
        }
    }
}

/// Moves a case by an action, inside the caller's transaction, and sets off what the new state
/// calls for (jobs to the supplier or the storefront, a reship through routing). An action its
/// state does not allow is refused (409 with what it allows).
pub async fn act(
    tx: &mut Tx,
    case_id: &str,
    input: ActionInput,
    actor: &str,
) -> Result<Case, CaseError> {
    // The lock first, before any read (see `lock_order`).
    sqlx::query("update orders set id = id where id = (select order_id from cases where id = $1)")
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
    // Read under the lock: an action that raced this one is seen.
    let case = get_in(tx, case_id)
        .await?
        .ok_or_else(|| CaseError::NotFound(format!("no case `{case_id}`")))?;
    let to = machine::next(case.kind, case.state, input.action)
        .map_err(|e| CaseError::Conflict(e.to_string()))?;
    let now = now_ms();
    let mut detail = json!({ "note": input.note });
    match input.action {
        Action::Refund => {
            let amount = input
                .amount_minor
                .or(case.refund_requested_minor)
                .unwrap_or(0);
            let order = orders::get_in(tx, &case.order_id).await?.ok_or_else(|| {
                CaseError::Internal(anyhow::anyhow!("the case's order is missing"))
            })?;
            let (paid, _) = money_of(tx, &order).await?;
            let refunded_elsewhere: Option<i64> = sqlx::query_scalar(
                "select cast(sum(refunded_minor) as bigint) from cases where order_id = $1 and id <> $2",
            )
            .bind(&case.order_id)
            .bind(&case.id)
            .fetch_one(&mut **tx)
            .await?;
            if amount < 0 || case.refunded_minor + amount + refunded_elsewhere.unwrap_or(0) > paid {
                return Err(CaseError::Conflict(format!(
                    "a refund of {amount} would exceed what was paid ({paid}, {} refunded already over the order's cases)",
                    case.refunded_minor + refunded_elsewhere.unwrap_or(0)
                )));
            }
            sqlx::query("update cases set refunded_minor = refunded_minor + $1 where id = $2")
                .bind(amount)
                .bind(&case.id)
                .execute(&mut **tx)
                .await?;
            detail["amount_minor"] = json!(amount);
        }
        Action::Inspect => {
            let resellable = input.resellable.ok_or_else(|| {
                CaseError::Unprocessable("`inspect` needs `resellable` (true or false)".into())
            })?;
            sqlx::query("update cases set resellable = $1, defect = $2 where id = $3")
                .bind(i64::from(resellable))
                .bind(&input.defect)
                .bind(&case.id)
                .execute(&mut **tx)
                .await?;
            detail["resellable"] = json!(resellable);
            detail["defect"] = json!(input.defect);
        }
        Action::ReturnShipped => {
            detail["tracking_number"] = json!(input.tracking_number);
        }
        _ => {}
    }
    sqlx::query("update cases set state = $1, updated_at_ms = $2, closed_at_ms = case when $1 = 'closed' then $2 else closed_at_ms end where id = $3")
        .bind(machine::name(&to))
        .bind(now)
        .bind(&case.id)
        .execute(&mut **tx)
        .await?;
    history(
        tx,
        &case.id,
        &machine::name(&input.action),
        Some(case.state),
        to,
        actor,
        detail.clone(),
    )
    .await?;
    orders::record_event(
        tx,
        &case.order_id,
        "case.changed",
        json!({ "case_id": case.id, "action": input.action, "from": case.state, "to": to, "by": actor }),
    )
    .await?;
    // As written: the new state, and what the action recorded (an inspection's outcome).
    let case = get_in(tx, &case.id)
        .await?
        .ok_or_else(|| CaseError::Internal(anyhow::anyhow!("case vanished")))?;
    follow_up(tx, &case, input.action, actor).await?;
    get_in(tx, &case.id)
        .await?
        .ok_or_else(|| CaseError::Internal(anyhow::anyhow!("case vanished")))
}

/// What a case's new state sets off.
async fn follow_up(tx: &mut Tx, case: &Case, action: Action, actor: &str) -> Result<(), CaseError> {
    let order = orders::get_in(tx, &case.order_id)
        .await?
        .ok_or_else(|| CaseError::Internal(anyhow::anyhow!("the case's order is missing")))?;
    match (case.kind, case.state) {
        // A cancellation: supplier orders not pushed yet are cancelled here; pushed ones are
        // asked to stop (intercept).
        (CaseKind::Cancel, CaseState::Approved) => {
            sqlx::query(
                "update supplier_orders set status = 'cancelled', reason = 'order cancelled', updated_at_ms = $1 where order_id = $2 and status = 'pending'",
            )
            .bind(now_ms())
            .bind(&order.id)
            .execute(&mut **tx)
            .await?;
            let pushed: Vec<(String, String)> = sqlx::query(
                "select id, supplier_connection_id from supplier_orders where order_id = $1 and status in ('submitted', 'accepted', 'shipped')",
            )
            .bind(&order.id)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("supplier_connection_id")?)))
            .collect::<Result<_, sqlx::Error>>()?;
            if pushed.is_empty() {
                orders::set_status(tx, &order.id, OrderStatus::Cancelled, None).await?;
                Box::pin(act(
                    tx,
                    &case.id,
                    ActionInput::of(Action::Intercepted),
                    "daifa",
                ))
                .await?;
            } else {
                Box::pin(act(
                    tx,
                    &case.id,
                    ActionInput::of(Action::Intercept),
                    "daifa",
                ))
                .await?;
                for (so, supplier) in pushed {
                    enqueue(
                        tx,
                        JobKind::SupplierCancel,
                        &format!("{}.cancel.{so}", case.id),
                        &so,
                        &order.id,
                        &supplier,
                    )
                    .await?;
                }
            }
        }
        (CaseKind::Cancel, CaseState::Intercepted)
        | (CaseKind::RefundOnly | CaseKind::PartialCompensation, CaseState::Approved) => {
            if case.kind == CaseKind::Cancel {
                orders::set_status(tx, &order.id, OrderStatus::Cancelled, None).await?;
            }
            enqueue(
                tx,
                JobKind::ChannelRefund,
                &format!("{}.refund", case.id),
                &case.id,
                &order.id,
                &order.connection_id,
            )
            .await?;
        }
        // Goods coming back: the supplier that shipped them authorizes the return; a storefront
        // return request is answered.
        (kind, CaseState::Approved) if kind.goods_come_back() => {
            if let Some((so, supplier)) = supplier_of(tx, case).await? {
                enqueue(
                    tx,
                    JobKind::SupplierReturn,
                    &format!("{}.return", case.id),
                    &case.id,
                    &order.id,
                    &supplier,
                )
                .await?;
                let _ = so;
            }
            if case.source == Source::Storefront && case.external_id.is_some() {
                enqueue(
                    tx,
                    JobKind::ChannelReturnDecision,
                    &format!("{}.return_decision", case.id),
                    &case.id,
                    &order.id,
                    &order.connection_id,
                )
                .await?;
            }
        }
        (CaseKind::Exchange, CaseState::Received) => {
            let policy = policy_for(tx, &order).await?;
            clocks::schedule(
                tx,
                clocks::Clock::Replacement,
                &case.id,
                &order.id,
                now_ms() + crate::db::ms(policy.replacement_within),
            )
            .await?;
        }
        // Inspected: a return is refunded (defective goods go back to the supplier on a note);
        // an exchange's replacement is routed.
        (CaseKind::ReturnRefund, CaseState::Inspected) => {
            if case.resellable == Some(false) {
                return_note(tx, case).await?;
            }
            enqueue(
                tx,
                JobKind::ChannelRefund,
                &format!("{}.refund", case.id),
                &case.id,
                &order.id,
                &order.connection_id,
            )
            .await?;
        }
        (CaseKind::Exchange, CaseState::Inspected) => {
            if case.resellable == Some(false) {
                return_note(tx, case).await?;
            }
            send_again(tx, case, &order, actor).await?;
        }
        (CaseKind::Reship, CaseState::Approved) => {
            send_again(tx, case, &order, actor).await?;
        }
        // Refunds and repairs end the case; so does a parcel that could not be stopped.
        (_, CaseState::Refunded) | (_, CaseState::InterceptFailed) | (_, CaseState::Rejected)
            if action != Action::Close =>
        {
            Box::pin(act(tx, &case.id, ActionInput::of(Action::Close), "daifa")).await?;
        }
        _ => {}
    }
    Ok(())
}

async fn enqueue(
    tx: &mut Tx,
    kind: JobKind,
    key: &str,
    subject: &str,
    order_id: &str,
    connection_id: &str,
) -> sqlx::Result<bool> {
    jobs::enqueue(
        tx,
        NewJob {
            kind,
            idempotency_key: key.to_string(),
            subject_id: subject,
            order_id,
            connection_id,
        },
    )
    .await
}

/// The supplier order that shipped the case's goods, and its supplier connection.
async fn supplier_of(tx: &mut Tx, case: &Case) -> sqlx::Result<Option<(String, String)>> {
    let Some(so) = &case.supplier_order_id else {
        return Ok(None);
    };
    let supplier: Option<String> =
        sqlx::query_scalar("select supplier_connection_id from supplier_orders where id = $1")
            .bind(so)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(supplier.map(|s| (so.clone(), s)))
}

/// Defective goods go back to the supplier on a return-to-supplier note, the goods' cost
/// deducted from its account (handbook 001).
async fn return_note(tx: &mut Tx, case: &Case) -> anyhow::Result<()> {
    let Some((so, supplier)) = supplier_of(tx, case).await? else {
        return Ok(());
    };
    // The cost the supplier charged for the lines, from their offers.
    let mut deduction: i64 = 0;
    let mut currency: Option<String> = None;
    for line in &case.lines {
        let row = sqlx::query(
            "select o.unit_cost_minor, o.currency from supplier_order_lines l join offers o on o.id = l.offer_id \
             where l.supplier_order_id = $1 and l.external_line_id = $2",
        )
        .bind(&so)
        .bind(&line.external_line_id)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(r) = row {
            let cost: Option<i64> = r.try_get("unit_cost_minor")?;
            deduction += cost.unwrap_or(0) * i64::from(line.quantity);
            currency = currency.or(r.try_get("currency")?);
        }
    }
    let id = new_id("rtn");
    sqlx::query(
        "insert into return_notes (id, case_id, supplier_connection_id, lines, defect, deduction_minor, currency, created_at_ms) \
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(&case.id)
    .bind(&supplier)
    .bind(serde_json::to_string(&case.lines)?)
    .bind(&case.defect)
    .bind((deduction > 0).then_some(deduction))
    .bind(&currency)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    orders::record_event(
        tx,
        &case.order_id,
        "case.return_to_supplier",
        json!({ "case_id": case.id, "note_id": id, "deduction_minor": deduction, "currency": currency, "defect": case.defect }),
    )
    .await?;
    Ok(())
}

/// A reship or an exchange's replacement: the case's lines routed again as a new supplier
/// order, marked as sending again the one that shipped them.
async fn send_again(
    tx: &mut Tx,
    case: &Case,
    order: &StoredOrder,
    actor: &str,
) -> Result<(), CaseError> {
    let channel_name: String = sqlx::query_scalar("select name from connections where id = $1")
        .bind(&order.connection_id)
        .fetch_one(&mut **tx)
        .await?;
    let canonical = order.canonical_order()?;
    let lines: Vec<(String, u32)> = case
        .lines
        .iter()
        .map(|l| (l.external_line_id.clone(), l.quantity))
        .collect();
    let decision = routing::route(
        tx,
        routing::Request {
            channel_connection_id: &order.connection_id,
            channel_name: &channel_name,
            order_id: &order.id,
            order: &canonical,
            trigger: routing::Trigger::Resolve,
            allow_partial: false,
            replaces: None,
            reship: Some(routing::Reship {
                case_id: &case.id,
                lines: &lines,
                of: case.supplier_order_id.as_deref(),
            }),
        },
    )
    .await?;
    if matches!(decision.outcome, routing::Outcome::Route { .. }) {
        let new_so: Option<String> = sqlx::query_scalar(
            "select id from supplier_orders where case_id = $1 order by created_at_ms desc limit 1",
        )
        .bind(&case.id)
        .fetch_optional(&mut **tx)
        .await?;
        sqlx::query("update cases set replacement_supplier_order_id = $1 where id = $2")
            .bind(&new_so)
            .bind(&case.id)
            .execute(&mut **tx)
            .await?;
        Box::pin(act(tx, &case.id, ActionInput::of(Action::Ship), actor)).await?;
    }
    Ok(())
}

// ---- what the other parties report ----

/// A storefront's after-sales request (`case-opened`), inside the ingest transaction: the case
/// of its order, opened once.
pub async fn from_storefront(
    tx: &mut Tx,
    channel_connection_id: &str,
    raw_id: &str,
    request: &CaseRequest,
) -> anyhow::Result<Value> {
    let Some(order) =
        orders::find_by_external_id(tx, channel_connection_id, &request.order_external_id).await?
    else {
        return Ok(json!({ "external_id": request.order_external_id, "case": "unknown_order" }));
    };
    // Money in another currency than the order's (a storefront's presentment currency) cannot
    // be weighed against what was paid: refused where the shop sees it, nothing recorded wrong.
    if let Some(money) = request
        .amount
        .as_ref()
        .filter(|m| !m.currency.eq_ignore_ascii_case(&order.currency))
    {
        let reason = format!(
            "the storefront's amount is {} minor units of {}, the order is in {}: record it by hand",
            money.amount_minor, money.currency, order.currency
        );
        orders::record_event(
            tx,
            &order.id,
            "case.refused",
            json!({ "external_id": request.external_id, "reason": reason, "raw_request_id": raw_id }),
        )
        .await?;
        return Ok(json!({ "order_id": order.id, "case": "refused", "reason": reason }));
    }
    let mut new = NewCase::new(&order.id, kind_of(request.kind), Source::Storefront);
    new.reason = request.reason.map(reason_of);
    new.note = request.note.clone();
    new.evidence = request.evidence.clone();
    new.lines = request
        .lines
        .iter()
        .map(|l| CaseLine {
            external_line_id: l.external_line_id.clone(),
            quantity: l.quantity,
        })
        .collect();
    new.external_id = Some(request.external_id.clone());
    new.refund_minor = request.amount.as_ref().map(|m| m.amount_minor);
    if request.refunded {
        new.refunded_minor = request.amount.as_ref().map(|m| m.amount_minor);
    }
    let case = match open(tx, new, "storefront").await {
        Ok(case) => case,
        Err(CaseError::Internal(e)) => return Err(e),
        // The storefront decided; Daifa records what it cannot accept as it stands.
        Err(refused) => {
            orders::record_event(
                tx,
                &order.id,
                "case.refused",
                json!({ "external_id": request.external_id, "reason": refused.to_string(), "raw_request_id": raw_id }),
            )
            .await?;
            return Ok(
                json!({ "order_id": order.id, "case": "refused", "reason": refused.to_string() }),
            );
        }
    };
    // The same request again, or a refund the storefront made for a case it opened before (a
    // return refunded in its admin): what it paid and the case does not know is recorded.
    if let Some(amount) = request
        .amount
        .as_ref()
        .filter(|_| request.refunded)
        .map(|m| m.amount_minor)
        && amount > case.refunded_minor
    {
        match refunded_on_storefront(tx, &case.id, amount - case.refunded_minor, "storefront").await
        {
            Ok(()) => {}
            Err(CaseError::Internal(e)) => return Err(e),
            Err(refused) => {
                orders::record_event(
                    tx,
                    &order.id,
                    "case.refused",
                    json!({ "external_id": request.external_id, "reason": refused.to_string(), "raw_request_id": raw_id }),
                )
                .await?;
            }
        }
    }
    Ok(json!({ "order_id": order.id, "case_id": case.id, "state": case.state }))
}

fn kind_of(kind: daifa_plugin_host::CaseKind) -> CaseKind {
    use daifa_plugin_host::CaseKind as K;
    match kind {
        K::Cancel => CaseKind::Cancel,
        K::RefundOnly => CaseKind::RefundOnly,
        K::PartialCompensation => CaseKind::PartialCompensation,
        K::ReturnRefund => CaseKind::ReturnRefund,
        K::Exchange => CaseKind::Exchange,
        K::Reship => CaseKind::Reship,
        K::WarrantyRepair => CaseKind::WarrantyRepair,
        K::PaidMaintenance => CaseKind::PaidMaintenance,
    }
}

fn reason_of(reason: daifa_plugin_host::CaseReason) -> Reason {
    use daifa_plugin_host::CaseReason as R;
    match reason {
        R::Quality => Reason::Quality,
        R::Damaged => Reason::Damaged,
        R::WrongItem => Reason::WrongItem,
        R::WrongQuantity => Reason::WrongQuantity,
        R::NotReceived => Reason::NotReceived,
        R::Lost => Reason::Lost,
        R::CustomsHeld => Reason::CustomsHeld,
        R::ChangedMind => Reason::ChangedMind,
        R::LateDelivery => Reason::LateDelivery,
        R::NotAsDescribed => Reason::NotAsDescribed,
        R::Other => Reason::Other,
    }
}

fn wit_kind(kind: CaseKind) -> daifa_plugin_host::CaseKind {
    use daifa_plugin_host::CaseKind as K;
    match kind {
        CaseKind::Cancel => K::Cancel,
        CaseKind::RefundOnly => K::RefundOnly,
        CaseKind::PartialCompensation => K::PartialCompensation,
        CaseKind::ReturnRefund => K::ReturnRefund,
        CaseKind::Exchange => K::Exchange,
        CaseKind::Reship => K::Reship,
        CaseKind::WarrantyRepair => K::WarrantyRepair,
        CaseKind::PaidMaintenance => K::PaidMaintenance,
    }
}

fn wit_reason(reason: Reason) -> daifa_plugin_host::CaseReason {
    use daifa_plugin_host::CaseReason as R;
    match reason {
        Reason::Quality => R::Quality,
        Reason::Damaged => R::Damaged,
        Reason::WrongItem => R::WrongItem,
        Reason::WrongQuantity => R::WrongQuantity,
        Reason::NotReceived => R::NotReceived,
        Reason::Lost => R::Lost,
        Reason::CustomsHeld => R::CustomsHeld,
        Reason::ChangedMind => R::ChangedMind,
        Reason::LateDelivery => R::LateDelivery,
        Reason::NotAsDescribed => R::NotAsDescribed,
        Reason::Other => R::Other,
    }
}

/// The supplier answered a cancellation (now or later): the supplier order is cancelled or
/// not; the case is intercepted when every pushed supplier order of the order is cancelled,
/// and fails when one refuses.
pub async fn on_cancellation(
    tx: &mut Tx,
    supplier_order_id: &str,
    accepted: bool,
    reason: Option<&str>,
) -> anyhow::Result<Value> {
    let order_id: Option<String> =
        sqlx::query_scalar("select order_id from supplier_orders where id = $1")
            .bind(supplier_order_id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some(order_id) = order_id else {
        return Ok(json!({ "supplier_order_id": supplier_order_id, "event": "unknown" }));
    };
    if accepted {
        routing::set_supplier_order_status(
            tx,
            supplier_order_id,
            "cancelled",
            None,
            reason.or(Some("cancelled at the supplier's")),
        )
        .await?;
    }
    orders::record_event(
        tx,
        &order_id,
        if accepted {
            "supplier_order.cancelled"
        } else {
            "supplier_order.cancel_refused"
        },
        json!({ "supplier_order_id": supplier_order_id, "reason": reason }),
    )
    .await?;
    let case_id: Option<String> = sqlx::query_scalar(
        "select id from cases where order_id = $1 and kind = 'cancel' and state = 'intercepting' order by opened_at_ms desc limit 1",
    )
    .bind(&order_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(case_id) = case_id {
        if !accepted {
            act(
                tx,
                &case_id,
                ActionInput::of(Action::InterceptFailed),
                "supplier",
            )
            .await
            .map_err(anyhow_of)?;
        } else {
            let left: i64 = sqlx::query_scalar(
                "select count(*) from supplier_orders where order_id = $1 and status in ('submitted', 'accepted', 'shipped')",
            )
            .bind(&order_id)
            .fetch_one(&mut **tx)
            .await?;
            if left == 0 {
                act(
                    tx,
                    &case_id,
                    ActionInput::of(Action::Intercepted),
                    "supplier",
                )
                .await
                .map_err(anyhow_of)?;
            }
        }
    }
    Ok(
        json!({ "supplier_order_id": supplier_order_id, "event": if accepted { "cancelled" } else { "cancel_refused" } }),
    )
}

fn anyhow_of(e: CaseError) -> anyhow::Error {
    match e {
        CaseError::Internal(e) => e,
        other => anyhow::anyhow!("{other}"),
    }
}

/// The open goods-back case a supplier report is about: the one it names, else the newest of
/// the supplier order's order.
async fn case_for_report(
    tx: &mut Tx,
    supplier_order_id: &str,
    case_id: Option<&str>,
) -> anyhow::Result<Option<String>> {
    if let Some(id) = case_id
        && get_in(tx, id).await?.is_some()
    {
        return Ok(Some(id.to_string()));
    }
    Ok(sqlx::query_scalar(
        "select c.id from cases c join supplier_orders s on s.order_id = c.order_id where s.id = $1 \
         and c.kind in ('return_refund', 'exchange', 'warranty_repair', 'paid_maintenance') and c.state <> 'closed' \
         order by c.opened_at_ms desc limit 1",
    )
    .bind(supplier_order_id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// The supplier has the goods back (a `return-received` event).
/// The supplier received goods back. Goods no case announced (a parcel its carrier brought
/// back that no tracking event reported) open one: an in-transit return, from the supplier,
/// already received, for the shop to decide between a refund and a reship (its proposal says
/// which loses less).
pub async fn on_return_received(
    tx: &mut Tx,
    supplier_order_id: &str,
    case_id: Option<&str>,
    lines: &[LineQuantity],
) -> anyhow::Result<Result<Value, String>> {
    let case_id = match case_for_report(tx, supplier_order_id, case_id).await? {
        Some(id) => id,
        None => {
            let order_id: String =
                sqlx::query_scalar("select order_id from supplier_orders where id = $1")
                    .bind(supplier_order_id)
                    .fetch_one(&mut **tx)
                    .await?;
            let mut new = NewCase::new(&order_id, CaseKind::ReturnRefund, Source::Supplier);
            new.return_kind = Some(ReturnKind::InTransitReturn);
            new.reason = Some(Reason::Other);
            new.note = Some("the supplier received goods back that no case announced".into());
            new.lines = lines
                .iter()
                .map(|l| CaseLine {
                    external_line_id: l.external_line_id.clone(),
                    quantity: l.quantity,
                })
                .collect();
            let case = match open(tx, new, "supplier").await {
                Ok(case) => case,
                Err(CaseError::Internal(e)) => return Err(e),
                Err(refused) => return Ok(Err(refused.to_string())),
            };
            if let Err(refused) = act(
                tx,
                &case.id,
                ActionInput::of(Action::ReturnShipped),
                "supplier",
            )
            .await
            {
                return match refused {
                    CaseError::Internal(e) => Err(e),
                    other => Ok(Err(other.to_string())),
                };
            }
            case.id
        }
    };
    match act(tx, &case_id, ActionInput::of(Action::Receive), "supplier").await {
        Ok(case) => Ok(Ok(
            json!({ "case_id": case.id, "event": "return_received", "state": case.state }),
        )),
        Err(CaseError::Internal(e)) => Err(e),
        Err(refused) => Ok(Err(refused.to_string())),
    }
}

/// The supplier inspected the goods (an `inspected` event).
pub async fn on_inspected(
    tx: &mut Tx,
    supplier_order_id: &str,
    case_id: Option<&str>,
    resellable: bool,
    defect: Option<&str>,
) -> anyhow::Result<Result<Value, String>> {
    let Some(case_id) = case_for_report(tx, supplier_order_id, case_id).await? else {
        return Ok(Err(format!(
            "no open return for supplier order {supplier_order_id}"
        )));
    };
    let mut input = ActionInput::of(Action::Inspect);
    input.resellable = Some(resellable);
    input.defect = defect.map(str::to_string);
    match act(tx, &case_id, input, "supplier").await {
        Ok(case) => Ok(Ok(
            json!({ "case_id": case.id, "event": "inspected", "state": case.state }),
        )),
        Err(CaseError::Internal(e)) => Err(e),
        Err(refused) => Ok(Err(refused.to_string())),
    }
}

/// A carrier event that opens a case (handbook 001, 002): a parcel on its way back or back with
/// its sender is an in-transit return, a refused one a refused parcel, a lost one a reship to
/// decide. Opened once per shipment and kind.
pub async fn from_carrier(
    tx: &mut Tx,
    shipment_id: &str,
    order_id: &str,
    detail: daifa_plugin_host::TrackingDetail,
) -> anyhow::Result<Option<String>> {
    use daifa_plugin_host::TrackingDetail as D;
    let (kind, return_kind, reason, received) = match detail {
        D::ReturningToSender => (
            CaseKind::ReturnRefund,
            Some(ReturnKind::InTransitReturn),
            Reason::Other,
            false,
        ),
        D::ReturnedToSender => (
            CaseKind::ReturnRefund,
            Some(ReturnKind::InTransitReturn),
            Reason::Other,
            true,
        ),
        D::Refused => (
            CaseKind::ReturnRefund,
            Some(ReturnKind::RefusedParcel),
            Reason::Other,
            false,
        ),
        D::Lost => (CaseKind::Reship, None, Reason::Lost, false),
        _ => return Ok(None),
    };
    let lines: Vec<CaseLine> = serde_json::from_str::<Vec<LineQuantity>>(
        &sqlx::query_scalar::<_, String>("select lines from shipments where id = $1")
            .bind(shipment_id)
            .fetch_one(&mut **tx)
            .await?,
    )?
    .into_iter()
    .map(|l| CaseLine {
        external_line_id: l.external_line_id,
        quantity: l.quantity,
    })
    .collect();
    let external = format!(
        "carrier:{shipment_id}:{}",
        match kind {
            CaseKind::Reship => "lost",
            _ => "return",
        }
    );
    let existing: Option<String> =
        sqlx::query_scalar("select id from cases where order_id = $1 and external_id = $2")
            .bind(order_id)
            .bind(&external)
            .fetch_optional(&mut **tx)
            .await?;
    let case_id = match existing {
        Some(id) => id,
        None => {
            let mut new = NewCase::new(order_id, kind, Source::Carrier);
            new.return_kind = return_kind;
            new.reason = Some(reason);
            new.lines = lines;
            new.shipment_id = Some(shipment_id.to_string());
            new.external_id = Some(external);
            match open(tx, new, "carrier").await {
                Ok(case) => case.id,
                Err(CaseError::Internal(e)) => return Err(e),
                Err(refused) => {
                    tracing::warn!(shipment_id, error = %refused, "a carrier event could not open a case");
                    return Ok(None);
                }
            }
        }
    };
    // The carrier brings it back unasked: the case moves on its own.
    let case = get_in(tx, &case_id).await?;
    if let Some(case) = case
        && case.kind == CaseKind::ReturnRefund
    {
        if case.state == CaseState::Requested {
            act(
                tx,
                &case.id,
                ActionInput::of(Action::ReturnShipped),
                "carrier",
            )
            .await
            .map_err(anyhow_of)?;
        }
        if received
            && get_in(tx, &case.id)
                .await?
                .is_some_and(|c| c.state == CaseState::ReturnInTransit)
        {
            act(tx, &case.id, ActionInput::of(Action::Receive), "carrier")
                .await
                .map_err(anyhow_of)?;
        }
    }
    Ok(Some(case_id))
}

/// A shipment came for a reship or an exchange's replacement: its case is done.
pub async fn on_replacement_shipped(tx: &mut Tx, supplier_order_id: &str) -> anyhow::Result<()> {
    let case_id: Option<String> = sqlx::query_scalar(
        "select id from cases where replacement_supplier_order_id = $1 and state = 'shipped'",
    )
    .bind(supplier_order_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(case_id) = case_id {
        act(tx, &case_id, ActionInput::of(Action::Close), "supplier")
            .await
            .map_err(anyhow_of)?;
    }
    Ok(())
}

// ---- jobs ----

/// The `channel.refund` job: pays the case's refund back through the storefront's plugin.
pub async fn run_refund(state: &AppState, job: &ClaimedJob) -> anyhow::Result<Outcome> {
    let mut tx = state.db.begin().await?;
    let Some(case) = get_in(&mut tx, &job.subject_id).await? else {
        return Ok(missing(&job.subject_id));
    };
    let order = orders::get_in(&mut tx, &case.order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the case's order is missing"))?;
    drop(tx);
    if !matches!(
        case.state,
        CaseState::Approved | CaseState::Intercepted | CaseState::Inspected
    ) {
        return Ok(Outcome::Succeeded);
    }
    let amount = case.refund_requested_minor.unwrap_or(0) - case.refunded_minor;
    if amount <= 0 {
        // Paid already (on the storefront, or by hand): the case moves on, nothing is sent.
        let mut tx = state.db.begin().await?;
        let mut input = ActionInput::of(Action::Refund);
        input.amount_minor = Some(0);
        input.note = Some("nothing left to refund: paid already".into());
        match act(&mut tx, &case.id, input, "daifa").await {
            Ok(_) | Err(CaseError::Conflict(_)) => {}
            Err(e) => return Err(anyhow_of(e)),
        }
        tx.commit().await?;
        return Ok(Outcome::Succeeded);
    }
    let (channel, plugin, ctx) = match callee(state, &order.connection_id).await? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    let request = RefundRequest {
        order_external_id: order.external_id.clone(),
        case_id: case.id.clone(),
        amount: Money {
            amount_minor: amount.max(0),
            currency: case.currency.clone(),
        },
        lines: if case.kind == CaseKind::PartialCompensation {
            Vec::new()
        } else {
            case.lines
                .iter()
                .map(|l| LineQuantity {
                    external_line_id: l.external_line_id.clone(),
                    quantity: l.quantity,
                })
                .collect()
        },
        reason: case.note.clone().or(case.reason.map(|r| machine::name(&r))),
        notify_customer: state.settings.fulfillment.notify_customer,
    };
    match plugin.refund(ctx, &request).await {
        Ok(refund) => {
            let mut tx = state.db.begin().await?;
            let mut input = ActionInput::of(Action::Refund);
            input.amount_minor = Some(amount.max(0));
            input.note = Some(format!(
                "refunded through {} as {}",
                channel.name, refund.external_id
            ));
            match act(&mut tx, &case.id, input, "daifa").await {
                Ok(_) => {}
                // Moved on meanwhile (refunded by hand): nothing to record twice.
                Err(CaseError::Conflict(m)) => {
                    tracing::warn!(case_id = %case.id, reason = %m, "refund recorded but the case moved on")
                }
                Err(e) => return Err(anyhow_of(e)),
            }
            tx.commit().await?;
            Ok(Outcome::Succeeded)
        }
        Err(failure) => Ok(outcome_of(failure)),
    }
}

/// The `channel.return_decision` job: answers the storefront's return request.
pub async fn run_return_decision(state: &AppState, job: &ClaimedJob) -> anyhow::Result<Outcome> {
    let mut tx = state.db.begin().await?;
    let Some(case) = get_in(&mut tx, &job.subject_id).await? else {
        return Ok(missing(&job.subject_id));
    };
    let order = orders::get_in(&mut tx, &case.order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the case's order is missing"))?;
    drop(tx);
    let (_, plugin, ctx) = match callee(state, &order.connection_id).await? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    let approved =
        !matches!(case.state, CaseState::Rejected | CaseState::Closed) || case.refunded_minor > 0;
    let note = match (&case.return_authorization, &case.return_address) {
        (Some(rma), Some(address)) => Some(format!(
            "Return authorization {rma}; send the goods to {address}"
        )),
        (Some(rma), None) => Some(format!("Return authorization {rma}")),
        _ => case.note.clone(),
    };
    let decision = ReturnDecision {
        order_external_id: order.external_id.clone(),
        case_id: case.id.clone(),
        external_id: case.external_id.clone(),
        approved,
        note,
    };
    match plugin.decide_return(ctx, &decision).await {
        Ok(()) => Ok(Outcome::Succeeded),
        // A storefront without return requests has nothing to answer.
        Err(failure) if failure.error.kind() == "unsupported" => Ok(Outcome::Succeeded),
        Err(failure) => Ok(outcome_of(failure)),
    }
}

/// The `supplier.cancel` job: asks the supplier to cancel (or stop) a supplier order.
pub async fn run_cancel(state: &AppState, job: &ClaimedJob) -> anyhow::Result<Outcome> {
    let Some(so) = routing::supplier_order(&state.db, &job.subject_id).await? else {
        return Ok(missing(&job.subject_id));
    };
    if so.status == "cancelled" {
        return Ok(Outcome::Succeeded);
    }
    let (_, plugin, ctx) = match callee(state, &so.supplier_connection_id).await? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    let request = CancelRequest {
        order: SupplierOrderRef {
            supplier_order_id: so.id.clone(),
            external_id: so.external_id.clone(),
        },
        idempotency_key: job.idempotency_key.clone(),
        reason: Some("the customer cancelled the order".into()),
    };
    match plugin.cancel_order(ctx, &request).await {
        Ok(status) => {
            let mut tx = state.db.begin().await?;
            match status {
                SupplierOrderStatus::CancellationAccepted | SupplierOrderStatus::Closed => {
                    on_cancellation(&mut tx, &so.id, true, None).await?;
                }
                SupplierOrderStatus::CancellationRejected => {
                    on_cancellation(
                        &mut tx,
                        &so.id,
                        false,
                        Some("the supplier could not cancel it"),
                    )
                    .await?;
                }
                _ => {
                    routing::set_supplier_order_status(
                        &mut tx,
                        &so.id,
                        "cancel_requested",
                        None,
                        None,
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(Outcome::Succeeded)
        }
        Err(failure) => Ok(outcome_of(failure)),
    }
}

/// The `supplier.return` job: tells the supplier goods come back and records where they go.
pub async fn run_return(state: &AppState, job: &ClaimedJob) -> anyhow::Result<Outcome> {
    let mut tx = state.db.begin().await?;
    let Some(case) = get_in(&mut tx, &job.subject_id).await? else {
        return Ok(missing(&job.subject_id));
    };
    drop(tx);
    let Some(so_id) = &case.supplier_order_id else {
        return Ok(Outcome::Succeeded);
    };
    let Some(so) = routing::supplier_order(&state.db, so_id).await? else {
        return Ok(missing(so_id));
    };
    let (_, plugin, ctx) = match callee(state, &so.supplier_connection_id).await? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    let request = ReturnRequest {
        order: SupplierOrderRef {
            supplier_order_id: so.id.clone(),
            external_id: so.external_id.clone(),
        },
        case_id: case.id.clone(),
        idempotency_key: job.idempotency_key.clone(),
        kind: wit_kind(case.kind),
        return_kind: match case.return_kind {
            Some(ReturnKind::InTransitReturn) => daifa_plugin_host::ReturnKind::InTransitReturn,
            Some(ReturnKind::RefusedParcel) => daifa_plugin_host::ReturnKind::RefusedParcel,
            _ => daifa_plugin_host::ReturnKind::CustomerReturn,
        },
        reason: case.reason.map(wit_reason),
        note: case.note.clone(),
        lines: case
            .lines
            .iter()
            .map(|l| LineQuantity {
                external_line_id: l.external_line_id.clone(),
                quantity: l.quantity,
            })
            .collect(),
    };
    match plugin.authorize_return(ctx, &request).await {
        Ok(authorization) => {
            let mut tx = state.db.begin().await?;
            sqlx::query("update cases set return_authorization = $1, return_address = $2, updated_at_ms = $3 where id = $4")
                .bind(&authorization.rma)
                .bind(authorization.address.as_ref().map(serde_json::to_string).transpose()?)
                .bind(now_ms())
                .bind(&case.id)
                .execute(&mut *tx)
                .await?;
            history(&mut tx, &case.id, "return_authorized", Some(case.state), case.state, "supplier",
                json!({ "rma": authorization.rma, "address": authorization.address, "note": authorization.note })).await?;
            tx.commit().await?;
            Ok(Outcome::Succeeded)
        }
        Err(failure) => Ok(outcome_of(failure)),
    }
}

fn missing(id: &str) -> Outcome {
    Outcome::Refused {
        kind: "missing".into(),
        error: format!("{id} does not exist"),
    }
}

// ---- decision helpers (handbooks 002, 004) ----

/// What the handbooks propose for a case: reship or refund by which loses less, a partial
/// refund before a return for a small defect, the choices for a short shipment.
pub async fn proposal(tx: &mut Tx, case: &Case) -> anyhow::Result<Option<Value>> {
    let order = orders::get_in(tx, &case.order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the case's order is missing"))?;
    let canonical = order.canonical_order()?;
    let price: i64 = case
        .lines
        .iter()
        .filter_map(|l| {
            canonical
                .lines
                .iter()
                .find(|o| o.external_line_id == l.external_line_id)
                .map(|o| o.unit_price.amount_minor * i64::from(l.quantity))
        })
        .sum();
    let in_transit = matches!(
        case.return_kind,
        Some(ReturnKind::InTransitReturn | ReturnKind::RefusedParcel)
    ) || case.reason == Some(Reason::Lost);
    if in_transit {
        // Reshipping costs the goods and the freight again; refunding costs what was paid.
        let channel_name: String = sqlx::query_scalar("select name from connections where id = $1")
            .bind(&order.connection_id)
            .fetch_one(&mut **tx)
            .await?;
        let lines: Vec<(String, u32)> = case
            .lines
            .iter()
            .map(|l| (l.external_line_id.clone(), l.quantity))
            .collect();
        let loaded = routing::load_lines(
            tx,
            &order.connection_id,
            &channel_name,
            Some(&order.id),
            &canonical,
            Some(&lines),
        )
        .await?;
        let reship_cost: Option<f64> = case
            .lines
            .iter()
            .map(|l| {
                let sku = &loaded
                    .lines
                    .iter()
                    .find(|x| x.external_line_id == l.external_line_id)?
                    .storefront_sku;
                loaded
                    .offers
                    .iter()
                    .filter(|o| &o.storefront_sku == sku && o.enabled && !o.discontinued)
                    .filter_map(|o| routing::decide::landed_cost_usd(&loaded.policy, o, l.quantity))
                    .reduce(f64::min)
            })
            .sum();
        let refund_usd = routing::customs::convert(
            &Money {
                amount_minor: price,
                currency: order.currency.clone(),
            },
            "USD",
            &loaded.policy,
        );
        let (choice, why) = match (reship_cost, refund_usd) {
            (Some(reship), Some(refund)) if reship < refund => (
                "reship",
                format!(
                    "reshipping costs {reship:.2} USD (goods and freight), less than refunding {refund:.2} USD"
                ),
            ),
            (Some(reship), Some(refund)) => (
                "refund",
                format!("refunding {refund:.2} USD loses less than reshipping for {reship:.2} USD"),
            ),
            _ => (
                "refund",
                "the offers' costs are unknown: refunding loses what was paid, nothing more"
                    .to_string(),
            ),
        };
        return Ok(Some(json!({ "propose": choice, "why": why })));
    }
    match case.reason {
        Some(Reason::Damaged | Reason::Quality | Reason::NotAsDescribed)
            if matches!(case.kind, CaseKind::ReturnRefund | CaseKind::Exchange)
                && case.state == CaseState::Requested =>
        {
            let policy = policy_for(tx, &order).await?;
            let partial = (price as f64 * policy.partial_refund_percent / 100.0).round() as i64;
            Ok(Some(
                json!({ "propose": "partial_compensation", "amount_minor": partial, "currency": order.currency,
                "why": format!("a small defect: offer a partial refund of {}% before a return", policy.partial_refund_percent) }),
            ))
        }
        Some(Reason::WrongQuantity) => Ok(Some(
            json!({ "propose": ["add_to_next_order", "reship", "partial_compensation"],
            "why": "short-shipped (check the parcel's weight and the shipping record): add the missing goods to the customer's next order, reship them, or refund them in part" }),
        )),
        Some(Reason::WrongItem) => Ok(Some(
            json!({ "propose": ["reship", "partial_compensation", "return_refund"],
            "why": "ask for photos; then reship the right item, refund in part, or take it back and refund in full" }),
        )),
        _ => Ok(None),
    }
}

// ---- API ----

fn operator(headers: &HeaderMap) -> String {
    headers
        .get("x-daifa-operator")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map_or_else(|| "api".to_string(), |s| s.chars().take(100).collect())
}

/// A case with its history, what it may do next, and the handbook's proposal.
async fn describe(state: &AppState, id: &str) -> ApiResult<Value> {
    let mut tx = state.db.begin().await?;
    let case = get_in(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no case `{id}`")))?;
    let history: Vec<Value> = sqlx::query(
        "select action, from_state, to_state, actor, detail, at_ms from case_events where case_id = $1 order by at_ms, id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| {
        Ok(json!({
            "action": r.try_get::<String, _>("action")?, "from": r.try_get::<Option<String>, _>("from_state")?,
            "to": r.try_get::<String, _>("to_state")?, "by": r.try_get::<String, _>("actor")?,
            "detail": serde_json::from_str::<Value>(&r.try_get::<String, _>("detail")?).unwrap_or(Value::Null),
            "at_ms": r.try_get::<i64, _>("at_ms")?,
        }))
    })
    .collect::<Result<_, sqlx::Error>>()?;
    let proposal = proposal(&mut tx, &case).await?;
    let notes: Vec<Value> = sqlx::query(
        "select id, lines, defect, deduction_minor, currency, created_at_ms from return_notes where case_id = $1 order by created_at_ms",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| {
        Ok(json!({ "id": r.try_get::<String, _>("id")?, "defect": r.try_get::<Option<String>, _>("defect")?,
                   "deduction_minor": r.try_get::<Option<i64>, _>("deduction_minor")?, "currency": r.try_get::<Option<String>, _>("currency")?,
                   "lines": serde_json::from_str::<Value>(&r.try_get::<String, _>("lines")?).unwrap_or(Value::Null) }))
    })
    .collect::<Result<_, sqlx::Error>>()?;
    tx.commit().await?;
    Ok(json!({
        "case": case,
        "allowed": machine::allowed(case.kind, case.state),
        "history": history,
        "proposal": proposal,
        "return_notes": notes,
    }))
}

async fn open_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(new): Json<NewCase>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let by = operator(&headers);
    let mut tx = state.db.begin().await?;
    let case = open(&mut tx, new, &by).await?;
    tx.commit().await?;
    state.wake_workers();
    Ok((StatusCode::CREATED, Json(describe(&state, &case.id).await?)))
}

async fn act_handler(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(input): Json<ActionInput>,
) -> ApiResult<Json<Value>> {
    let by = operator(&headers);
    let mut tx = state.db.begin().await?;
    act(&mut tx, &id, input, &by).await?;
    tx.commit().await?;
    state.wake_workers();
    Ok(Json(describe(&state, &id).await?))
}

async fn get_handler(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(describe(&state, &id).await?))
}

#[derive(Debug, Deserialize)]
pub struct CaseQuery {
    pub state: Option<String>,
    pub order_id: Option<String>,
    /// Only the cases not closed.
    #[serde(default)]
    pub open: bool,
}

async fn list_handler(
    State(state): State<AppState>,
    Query(q): Query<CaseQuery>,
) -> ApiResult<Json<Value>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from cases where ($1 = '' or state = $1) and ($2 = '' or order_id = $2) and ($3 = 0 or state <> 'closed') \
         order by opened_at_ms desc, id desc limit 500"
    )))
    .bind(q.state.as_deref().unwrap_or(""))
    .bind(q.order_id.as_deref().unwrap_or(""))
    .bind(i64::from(q.open))
    .fetch_all(&state.db.pool)
    .await?;
    let cases = rows
        .iter()
        .map(from_row)
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Json(json!({ "cases": cases })))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cases", get(list_handler).post(open_handler))
        .route("/cases/{id}", get(get_handler))
        .route("/cases/{id}/actions", post(act_handler))
        .merge(clocks::router())
}
