//! After-sales: what happens after the order (handbooks 001, 002, 004). A case (cancel,
//! refund, compensation, return, exchange, reship, repair) is opened by the storefront (its
//! refund and return webhooks), the operator (the API), a supplier, or a carrier event (a
//! parcel returned to its sender or refused becomes an in-transit return; a lost one a reship).
//! Each kind moves through its own state machine ([`machine`]); every action is kept in the
//! case's history. Actions become durable jobs to the right party: cancellations and return
//! authorizations to the supplier that shipped, refunds through the storefront's plugin,
//! reships and replacements through the routing engine. Refunds never exceed what was paid, over
//! all the cases of an order. The service clocks ([`clocks`]) open tasks in the exception queue
//! when a handbook's time runs out. Cases, their history and return notes are stored by
//! `crate::store::cases`.
//!
//! Code map: here, the case, [`open`] and [`act`] (and what each new state sets off);
//! `reports` turns what the storefront, the supplier and the carrier report into cases and
//! actions; `outbound` runs the jobs that go out to them; `proposal` gives the handbooks'
//! advice; `api` is `/api/v1/cases`.

mod api;
pub mod clocks;
pub mod machine;
mod outbound;
mod proposal;
mod reports;

pub use api::{CaseQuery, router};
pub use outbound::{run_cancel, run_refund, run_return, run_return_decision};
pub use proposal::proposal;
use reports::{anyhow_of, wit_kind, wit_reason};
pub use reports::{
    cancelled_after_shipping, from_carrier, from_storefront, on_cancellation, on_inspected,
    on_replacement_shipped, on_return_received,
};

pub use machine::{Action, CaseKind, CaseState};

use crate::calls::{callee, outcome_of};
use crate::db::{Tx, new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::policy::{AfterSalesPolicy, Freight};
use crate::routing;
use crate::services::Services;
use crate::store::cases::{self, CaseRow, NewCaseRow, NewReturnNote};
use crate::store::jobs::{self, ClaimedJob, JobKind, NewJob, Outcome};
use crate::store::orders::{self, OrderStatus, StoredOrder};
use crate::store::shipments;
use crate::store::supplier_orders::{self, SoStatus};
use crate::worker::Handler;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use daifa_plugin_host::channel::{CaseRequest, RefundRequest, ReturnDecision};
use daifa_plugin_host::supplier::{CancelRequest, ReturnRequest};
use daifa_plugin_host::{LineQuantity, Money, SupplierOrderRef, SupplierOrderStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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

impl Case {
    /// The case's lines as (line id, quantity): what a reship routes again.
    fn line_quantities(&self) -> Vec<(String, u32)> {
        self.lines
            .iter()
            .map(|l| (l.external_line_id.clone(), l.quantity))
            .collect()
    }
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    Ok(serde_json::from_value(Value::String(text.to_string()))?)
}

/// A case from its stored row: the names of its kind, state, return kind, reason and source
/// read back, its JSON read.
fn of_row(r: CaseRow) -> anyhow::Result<Case> {
    Ok(Case {
        id: r.id,
        order_id: r.order_id,
        kind: parse(&r.kind)?,
        state: parse(&r.state)?,
        return_kind: r.return_kind.map(|s| parse(&s)).transpose()?,
        reason: r.reason.map(|s| parse(&s)).transpose()?,
        note: r.note,
        source: parse(&r.source)?,
        external_id: r.external_id,
        lines: serde_json::from_str(&r.lines)?,
        evidence: serde_json::from_str(&r.evidence)?,
        currency: r.currency,
        refund_requested_minor: r.refund_requested_minor,
        refunded_minor: r.refunded_minor,
        freight: serde_json::from_str(&r.freight).ok(),
        supplier_order_id: r.supplier_order_id,
        shipment_id: r.shipment_id,
        return_authorization: r.return_authorization,
        return_address: r.return_address.and_then(|s| serde_json::from_str(&s).ok()),
        resellable: r.resellable,
        defect: r.defect,
        replacement_supplier_order_id: r.replacement_supplier_order_id,
        opened_at_ms: r.opened_at_ms,
        updated_at_ms: r.updated_at_ms,
        closed_at_ms: r.closed_at_ms,
    })
}

/// A case, read inside a transaction.
pub async fn get_in(tx: &mut Tx, id: &str) -> anyhow::Result<Option<Case>> {
    cases::get_in(tx, id).await?.map(of_row).transpose()
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
    let committed = cases::committed_of_order(tx, &order.id).await?;
    Ok((order.total_minor, committed))
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
    let paid = orders::get_in(tx, &case.order_id)
        .await?
        .ok_or_else(|| CaseError::NotFound(format!("no order `{}`", case.order_id)))?
        .total_minor;
    let refunded = cases::refunded_of_order(tx, &case.order_id).await?;
    if amount < 0 || refunded + amount > paid {
        return Err(CaseError::Conflict(format!(
            "a storefront refund of {amount} would take the order's refunds above what was paid ({refunded} of {paid})"
        )));
    }
    cases::add_storefront_refund(tx, case_id, amount).await?;
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

/// The after-sales policy for a case: its order's channel's and its goods' category's
/// ([`OrderContext::after_sales_of_lines`](crate::routing::context::OrderContext::after_sales_of_lines)).
pub async fn policy_of_case(
    tx: &mut Tx,
    order: &StoredOrder,
    case: &Case,
) -> anyhow::Result<AfterSalesPolicy> {
    let context = crate::routing::context::OrderContext::of(tx, order.clone()).await?;
    let lines: Vec<&str> = case
        .lines
        .iter()
        .map(|l| l.external_line_id.as_str())
        .collect();
    context.after_sales_of_lines(tx, &lines).await
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
    // Serializes the after-sales of one order: two actions at once (an operator and a
    // storefront webhook, two replicas) would otherwise read the case in the same state, or
    // count the same refunds, and both go through.
    orders::lock(tx, &new.order_id).await?;
    let order = orders::get_in(tx, &new.order_id)
        .await?
        .ok_or_else(|| CaseError::NotFound(format!("no order `{}`", new.order_id)))?;
    if let Some(external) = &new.external_id
        && let Some(id) = cases::find_by_external_id(tx, &order.id, external).await?
    {
        return get_in(tx, &id)
            .await?
            .ok_or_else(|| CaseError::Internal(anyhow::anyhow!("case {id} vanished")));
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
    let context = crate::routing::context::OrderContext::of(tx, order.clone()).await?;
    let line_ids: Vec<&str> = lines.iter().map(|l| l.external_line_id.as_str()).collect();
    // The case's own rules (freight, clocks): those of its goods' category.
    let policy = context.after_sales_of_lines(tx, &line_ids).await?;
    let delivered = shipments::last_delivered_at(tx, &order.id).await?;
    let now = now_ms();
    if source == Source::Operator
        && let Some(delivered) = delivered
    {
        // Each line by its own category's window: a sofa and its cushions may come back on
        // different terms.
        for line in &line_ids {
            let policy = context.after_sales_of_lines(tx, &[line]).await?;
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
                let of_line = if line_ids.len() > 1 {
                    format!(" of line `{line}`")
                } else {
                    String::new()
                };
                return Err(CaseError::Unprocessable(format!(
                    "the {what} window{of_line} of {} days after delivery has passed: delivered {} days ago{hint}",
                    days(crate::db::ms(window)),
                    days(now - delivered)
                )));
            }
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
    let supplier_order_id = supplier_orders::carrying_line(tx, &order.id, &first).await?;
    let shipment_id = match &new.shipment_id {
        Some(s) => Some(s.clone()),
        None => match &supplier_order_id {
            Some(so) => shipments::latest_of(tx, so).await?,
            None => None,
        },
    };
    let return_kind = new.return_kind.or(new
        .kind
        .goods_come_back()
        .then_some(ReturnKind::CustomerReturn));
    let id = new_id("case");
    let lines_json = serde_json::to_string(&lines).map_err(anyhow::Error::from)?;
    let evidence_json = serde_json::to_string(&new.evidence).map_err(anyhow::Error::from)?;
    let freight_json = freight
        .flatten()
        .map(|f| serde_json::to_string(&f))
        .transpose()
        .map_err(anyhow::Error::from)?
        .unwrap_or_else(|| "{}".into());
    cases::insert(
        tx,
        NewCaseRow {
            id: &id,
            order_id: &order.id,
            kind: &machine::name(&new.kind),
            state: &machine::name(&machine::initial(new.kind)),
            return_kind: return_kind.map(|k| machine::name(&k)).as_deref(),
            reason: new.reason.map(|r| machine::name(&r)).as_deref(),
            note: new.note.as_deref(),
            source: &machine::name(&source),
            external_id: new.external_id.as_deref(),
            lines: &lines_json,
            evidence: &evidence_json,
            currency: &order.currency,
            refund_requested_minor: refund_requested,
            freight: &freight_json,
            supplier_order_id: supplier_order_id.as_deref(),
            shipment_id: shipment_id.as_deref(),
            opened_at_ms: now,
        },
    )
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
    clocks::on_case_opened(tx, &policy, &id, &order.id, new.kind.refunds(), now).await?;
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
    cases::record_event(
        tx,
        case_id,
        action,
        from.map(|s| machine::name(&s)).as_deref(),
        &machine::name(&to),
        actor,
        &detail.to_string(),
    )
    .await
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
    // The order's lock first, before the case is read (see `open`).
    if let Some(order_id) = cases::order_of(tx, case_id).await? {
        orders::lock(tx, &order_id).await?;
    }
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
            let refunded_elsewhere =
                cases::refunded_of_order_but(tx, &case.order_id, &case.id).await?;
            if amount < 0 || case.refunded_minor + amount + refunded_elsewhere > paid {
                return Err(CaseError::Conflict(format!(
                    "a refund of {amount} would exceed what was paid ({paid}, {} refunded already over the order's cases)",
                    case.refunded_minor + refunded_elsewhere
                )));
            }
            cases::add_refund(tx, &case.id, amount).await?;
            detail["amount_minor"] = json!(amount);
        }
        Action::Inspect => {
            let resellable = input.resellable.ok_or_else(|| {
                CaseError::Unprocessable("`inspect` needs `resellable` (true or false)".into())
            })?;
            cases::set_inspection(tx, &case.id, resellable, input.defect.as_deref()).await?;
            detail["resellable"] = json!(resellable);
            detail["defect"] = json!(input.defect);
        }
        Action::ReturnShipped => {
            detail["tracking_number"] = json!(input.tracking_number);
        }
        _ => {}
    }
    // A compare-and-set on the state read: under the order's lock it always moves, but a case
    // is never moved from a state it has already left.
    if !cases::set_state(
        tx,
        &case.id,
        &machine::name(&case.state),
        &machine::name(&to),
        now,
    )
    .await?
    {
        return Err(CaseError::Conflict(format!(
            "case `{}` changed meanwhile; look again",
            case.id
        )));
    }
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

/// A cancel case the shop opened cancelled its order: the storefront, which still shows it open,
/// is asked to cancel it too (the case pays the refund). One the storefront sent knows already.
async fn storefront_told(tx: &mut Tx, case: &Case, actor: &str) -> Result<(), CaseError> {
    if case.source == Source::Storefront {
        return Ok(());
    }
    // A cancel case is the buyer's request.
    let cause = crate::cancellation::Cause::Customer;
    crate::cancellation::tell_storefront(
        tx,
        &case.order_id,
        crate::cancellation::StorefrontCancel {
            by: actor,
            cause,
            reason: case.note.as_deref(),
            case_id: Some(&case.id),
        },
    )
    .await?;
    Ok(())
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
            let stopped = crate::cancellation::stop_supplier_orders(
                tx,
                &order.id,
                &format!("case.{}", case.id),
                true,
            )
            .await?;
            if stopped.asked.is_empty() && stopped.shipped.is_empty() {
                orders::set_status(tx, &order.id, OrderStatus::Cancelled, None)
                    .await?
                    .expected(&order.id, OrderStatus::Cancelled);
                storefront_told(tx, case, actor).await?;
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
            }
        }
        (CaseKind::Cancel, CaseState::Intercepted)
        | (CaseKind::RefundOnly | CaseKind::PartialCompensation, CaseState::Approved) => {
            if case.kind == CaseKind::Cancel {
                orders::set_status(tx, &order.id, OrderStatus::Cancelled, None)
                    .await?
                    .expected(&order.id, OrderStatus::Cancelled);
                storefront_told(tx, case, actor).await?;
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
            let policy = policy_of_case(tx, &order, case).await?;
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
    let supplier = supplier_orders::supplier_of(tx, so).await?;
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
        if let Some((cost, cost_currency)) =
            routing::line_cost(tx, &so, &line.external_line_id).await?
        {
            deduction += cost.unwrap_or(0) * i64::from(line.quantity);
            currency = currency.or(cost_currency);
        }
    }
    let id = new_id("rtn");
    cases::insert_return_note(
        tx,
        NewReturnNote {
            id: &id,
            case_id: &case.id,
            supplier_connection_id: &supplier,
            lines: &serde_json::to_string(&case.lines)?,
            defect: case.defect.as_deref(),
            deduction_minor: (deduction > 0).then_some(deduction),
            currency: currency.as_deref(),
        },
    )
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
    let context = crate::routing::context::OrderContext::of(tx, order.clone()).await?;
    let lines = case.line_quantities();
    let decision = routing::route(
        tx,
        routing::Request {
            channel_connection_id: &order.connection_id,
            policy: &context.routing,
            scope: context.scope(),
            order_id: &order.id,
            order: &context.canonical,
            trigger: routing::Trigger::Resolve,
            fresh: false,
            allow_partial: false,
            replaces: None,
            reship: Some(routing::Reship {
                case_id: &case.id,
                lines: &lines,
                of: case.supplier_order_id.as_deref(),
            }),
            known_products: None,
        },
    )
    .await?;
    if matches!(decision.outcome, routing::Outcome::Route { .. }) {
        let new_so = supplier_orders::latest_for_case(tx, &case.id).await?;
        cases::set_replacement(tx, &case.id, new_so.as_deref()).await?;
        Box::pin(act(tx, &case.id, ActionInput::of(Action::Ship), actor)).await?;
    }
    Ok(())
}

/// The jobs of this stage: what a case sends out (refunds, return decisions, cancellations,
/// returns), the refund sweep and the service clocks.
pub fn jobs() -> Vec<Handler> {
    let mut jobs = vec![
        Handler {
            kind: JobKind::ChannelRefund,
            prepare: None,
            run: |s, job| Box::pin(async move { run_refund(s, job).await.map(Into::into) }),
            on_dead: None,
        },
        Handler {
            kind: JobKind::ChannelReturnDecision,
            prepare: None,
            run: |s, job| {
                Box::pin(async move { run_return_decision(s, job).await.map(Into::into) })
            },
            on_dead: None,
        },
        Handler {
            kind: JobKind::SupplierCancel,
            prepare: None,
            run: |s, job| Box::pin(async move { run_cancel(s, job).await.map(Into::into) }),
            on_dead: Some(|tx, job, error| Box::pin(cancel_undelivered(tx, job, error))),
        },
        Handler {
            kind: JobKind::SupplierReturn,
            prepare: None,
            run: |s, job| Box::pin(async move { run_return(s, job).await.map(Into::into) }),
            on_dead: None,
        },
        Handler {
            kind: JobKind::RefundSweep,
            prepare: None,
            run: |s, job| Box::pin(async move { clocks::run_sweep(s, job).await.map(Into::into) }),
            on_dead: None,
        },
    ];
    for kind in clocks::KINDS {
        jobs.push(Handler {
            kind,
            prepare: None,
            run: |s, job| Box::pin(async move { clocks::run(s, job).await.map(Into::into) }),
            on_dead: None,
        });
    }
    jobs
}

/// A supplier that cannot be told to cancel leaves a task: its order is cancelled or went
/// elsewhere, so holding it would help nobody.
async fn cancel_undelivered(tx: &mut Tx, job: &ClaimedJob, error: &str) -> anyhow::Result<()> {
    crate::store::tasks::open(
        tx,
        "cancel_undelivered",
        &format!("{}.dead", job.id),
        job.order_id.as_deref(),
        None,
        "A supplier could not be asked to cancel an order it should not ship: tell it another way",
        json!({ "job_id": job.id, "supplier_order_id": job.subject_id, "error": error }),
    )
    .await?;
    Ok(())
}
