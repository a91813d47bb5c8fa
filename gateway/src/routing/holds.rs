//! Holds: an order waiting for the operator, with the reason. A hold is released (its check is
//! not made again and the order is routed), resolved (a stock-out: an alternative product with a
//! discount, a later date while the other lines ship, or cancellation; handbook 001), or the
//! order is cancelled. Every action is audited on the order's timeline with who did it. A
//! stock-out hold carries the time by which the customer must be contacted. The holds are
//! [`crate::store::holds`]' rows; an alternative product is a substitution of
//! [`crate::store::supplier_orders`].

use super::{HoldKind, Request, Trigger, context};
use crate::db::{Tx, now_ms};
use crate::error::operator;
use crate::error::{ApiError, ApiResult};
use crate::policy::RoutingPolicy;
use crate::services::Services;
use crate::store::holds::{self, HoldView};
use crate::store::jobs::{self, ClaimedJob, JobKind, NewJob, Outcome};
use crate::store::orders::{self, OrderStatus, StoredOrder};
use crate::store::supplier_orders::{self, SoStatus};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

/// Opens a hold (unless one of the same kind is open for the order) and puts the order on hold.
pub async fn open(
    tx: &mut Tx,
    policy: &RoutingPolicy,
    order_id: &str,
    kind: HoldKind,
    reason: &str,
    decision_id: &str,
) -> anyhow::Result<()> {
    let now = now_ms();
    let contact_due =
        (kind == HoldKind::StockOut).then(|| now + crate::db::ms(policy.stock_out_contact));
    let existing = holds::open_of_kind(tx, order_id, kind.as_str()).await?;
    let hold_id = match existing {
        Some(id) => {
            holds::set_reason(tx, &id, reason).await?;
            id
        }
        None => {
            let id = holds::insert(tx, order_id, kind.as_str(), reason, now, contact_due).await?;
            if let Some(due) = contact_due {
                crate::clocks::schedule(
                    tx,
                    crate::clocks::Clock::StockOutContact,
                    &id,
                    order_id,
                    due,
                )
                .await?;
            }
            id
        }
    };
    orders::set_status(tx, order_id, OrderStatus::OnHold, Some(reason))
        .await?
        .expected(order_id, OrderStatus::OnHold);
    orders::record_event(
        tx,
        order_id,
        "order.held",
        json!({ "hold_id": hold_id, "kind": kind.as_str(), "reason": reason, "decision_id": decision_id, "contact_due_at_ms": contact_due }),
    )
    .await?;
    tracing::info!(order_id, kind = kind.as_str(), reason, "order held");
    Ok(())
}

#[derive(Debug, Deserialize)]
pub struct HoldQuery {
    /// `open` (default), `released`, `resolved`, `cancelled`, `superseded` (the storefront
    /// changed the order), or `all`.
    pub status: Option<String>,
    pub order_id: Option<String>,
}

async fn list(State(state): State<Services>, Query(q): Query<HoldQuery>) -> ApiResult<Json<Value>> {
    let status = q.status.as_deref().unwrap_or("open");
    let holds = holds::list(&state.db, status, q.order_id.as_deref()).await?;
    Ok(Json(json!({ "holds": holds })))
}

/// An open hold and its order, inside `tx`.
async fn open_hold(tx: &mut Tx, id: &str) -> ApiResult<(HoldView, StoredOrder)> {
    let hold = holds::get(tx, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no hold `{id}`")))?;
    if hold.status != "open" {
        return Err(ApiError::Conflict(format!(
            "hold `{id}` is {}, not open",
            hold.status
        )));
    }
    let order = orders::get_in(tx, &hold.order_id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the hold's order is missing")))?;
    Ok((hold, order))
}

/// A hold another operator released or resolved between our read and our change: nothing of
/// ours is applied (the transaction is rolled back), the order is routed once.
fn closed_meanwhile(id: &str) -> ApiError {
    ApiError::Conflict(format!("hold `{id}` was closed meanwhile; look again"))
}

/// Routes the order again (after a release or a choice), in `tx`.
async fn reroute(
    tx: &mut Tx,
    order: &StoredOrder,
    trigger: Trigger,
    allow_partial: bool,
) -> ApiResult<super::Decision> {
    let context = context::OrderContext::of(tx, order.clone()).await?;
    Ok(super::route(
        tx,
        Request {
            channel_connection_id: &order.connection_id,
            policy: &context.routing,
            scope: context.scope(),
            order_id: &order.id,
            order: &context.canonical,
            trigger,
            fresh: false,
            allow_partial,
            replaces: None,
            reship: None,
            known_products: None,
        },
    )
    .await?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /holds/{id}/release`: the operator has looked; the hold's check is not made again and
/// the order is routed (it may be held for another reason). A stock-out cannot be released:
/// resolve it.
async fn release(
    State(state): State<Services>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Option<Json<Note>>,
) -> ApiResult<Json<Value>> {
    let by = operator(&headers);
    let note = body.map(|Json(n)| n.note).unwrap_or_default();
    let mut tx = state.db.begin().await?;
    let (hold, order) = open_hold(&mut tx, &id).await?;
    if matches!(hold.kind.as_str(), "stock_out" | "incomplete") {
        return Err(ApiError::Conflict(format!(
            "a {} hold cannot be released: {}",
            hold.kind,
            if hold.kind == "stock_out" {
                "resolve it (alternative, later, cancel)"
            } else {
                "the order has nothing to ship"
            }
        )));
    }
    if order.status == OrderStatus::Cancelled.as_str() {
        return Err(ApiError::Conflict("the order is cancelled".into()));
    }
    if !holds::close(&mut tx, &id, "released", &by, &json!({ "note": note })).await? {
        return Err(closed_meanwhile(&id));
    }
    orders::record_event(
        &mut tx,
        &order.id,
        "hold.released",
        json!({ "hold_id": id, "kind": hold.kind, "by": by, "note": note }),
    )
    .await?;
    if hold.kind == HoldKind::DoubleShipment.as_str() {
        release_held(&mut tx, &order).await?;
    }
    let decision = reroute(&mut tx, &order, Trigger::Release, false).await?;
    tx.commit().await?;
    state.wake_workers();
    Ok(Json(
        json!({ "hold_id": id, "status": "released", "decision": decision }),
    ))
}

/// The held supplier orders of an order go out: each is pending again and its push job runs
/// again (it found the supplier order held and sent nothing; a push still waiting for a retry
/// goes on by itself), under its first key, so the supplier sees one webhook id.
async fn release_held(tx: &mut Tx, order: &StoredOrder) -> anyhow::Result<()> {
    for (id, supplier) in super::held_of(tx, &order.id).await? {
        if supplier_orders::transition_from(
            tx,
            &id,
            &[SoStatus::Held],
            SoStatus::Pending,
            supplier_orders::Change::default(),
        )
        .await?
        .happened()
        {
            jobs::requeue(tx, &format!("{id}.submit")).await?;
            orders::record_event(
                tx,
                &order.id,
                "supplier_order.released",
                json!({ "supplier_order_id": id, "supplier_connection_id": supplier }),
            )
            .await?;
        }
    }
    Ok(())
}

/// The handbook's choices for a stock-out (001).
#[derive(Debug, Deserialize)]
#[serde(tag = "choice", rename_all = "snake_case", deny_unknown_fields)]
pub enum Choice {
    /// Ship another product for a line, with a discount for the customer (the canonical
    /// schema's money: `{"amount_minor": 500, "currency": "USD"}`).
    Alternative {
        line_id: String,
        storefront_sku: String,
        #[serde(default)]
        discount: Option<daifa_plugin_host::Money>,
    },
    /// The customer accepts a later date: the other lines ship now, the rest are routed again
    /// then.
    Later { until_ms: i64 },
    /// The customer cancels.
    Cancel {
        #[serde(default)]
        reason: Option<String>,
    },
}

/// What an operator's choice for a stock-out left to do.
pub enum Resolved {
    /// Done in the transaction: the answer to give.
    Done(Value),
    /// The customer chose to cancel: the caller cancels the order (`crate::cancellation`), in
    /// the same transaction.
    Cancel {
        order: Box<StoredOrder>,
        reason: Option<String>,
    },
}

/// `POST /holds/{id}/resolve` (`crate::admin`): the customer's choice for a stock-out, inside
/// `tx`.
pub async fn resolve(tx: &mut Tx, id: &str, by: &str, choice: Choice) -> ApiResult<Resolved> {
    let (hold, order) = open_hold(tx, id).await?;
    if hold.kind != HoldKind::StockOut.as_str() {
        return Err(ApiError::Conflict(format!(
            "only a stock-out is resolved by a choice; this hold is {}: release it or cancel the order",
            hold.kind
        )));
    }
    let answer = match choice {
        Choice::Alternative {
            line_id,
            storefront_sku,
            discount,
        } => {
            let canonical = order.canonical_order()?;
            if !canonical
                .lines
                .iter()
                .any(|l| l.external_line_id == line_id)
            {
                return Err(ApiError::Unprocessable(format!(
                    "the order has no line `{line_id}`"
                )));
            }
            if storefront_sku.trim().is_empty() {
                return Err(ApiError::Unprocessable("storefront_sku is empty".into()));
            }
            if let Some(d) = &discount {
                crate::money::bounded(d.amount_minor, &d.currency)
                    .map_err(|e| ApiError::Unprocessable(format!("discount: {e}")))?;
                if d.amount_minor < 0 {
                    return Err(ApiError::Unprocessable(format!(
                        "discount: must not be negative, not {}",
                        d.amount_minor
                    )));
                }
            }
            let discount_minor = discount.as_ref().map(|d| d.amount_minor);
            supplier_orders::substitute(
                tx,
                &order.id,
                &line_id,
                storefront_sku.trim(),
                discount_minor,
                discount.as_ref().map(|d| d.currency.as_str()),
            )
            .await?;
            let resolution = json!({ "choice": "alternative", "line_id": line_id, "storefront_sku": storefront_sku, "discount": discount });
            if !holds::close(tx, id, "resolved", by, &resolution).await? {
                return Err(closed_meanwhile(id));
            }
            orders::record_event(
                tx,
                &order.id,
                "hold.resolved",
                json!({ "hold_id": id, "by": by, "resolution": resolution }),
            )
            .await?;
            let decision = reroute(tx, &order, Trigger::Resolve, false).await?;
            json!({ "hold_id": id, "status": "resolved", "decision": decision })
        }
        Choice::Later { until_ms } => {
            if until_ms <= now_ms() {
                return Err(ApiError::Unprocessable(
                    "`until_ms` must be in the future".into(),
                ));
            }
            let resolution = json!({ "choice": "later", "until_ms": until_ms });
            orders::record_event(
                tx,
                &order.id,
                "hold.later",
                json!({ "hold_id": id, "by": by, "until_ms": until_ms }),
            )
            .await?;
            holds::set_resolution(tx, id, &resolution, by).await?;
            // The other lines ship now; the hold stays open for the waiting ones until then.
            let decision = reroute(tx, &order, Trigger::Resolve, true).await?;
            jobs::enqueue_at(
                tx,
                NewJob {
                    kind: JobKind::RoutingRetry,
                    idempotency_key: format!("{}.retry.{until_ms}", order.id),
                    subject_id: &order.id,
                    order_id: &order.id,
                    connection_id: &order.connection_id,
                },
                until_ms,
            )
            .await?;
            json!({ "hold_id": id, "status": "open", "retry_at_ms": until_ms, "decision": decision })
        }
        Choice::Cancel { reason } => {
            return Ok(Resolved::Cancel {
                order: Box::new(order),
                reason,
            });
        }
    };
    Ok(Resolved::Done(answer))
}

/// The `routing.retry` job: a stock-out's later date came; the waiting lines are routed again
/// (what still has no offer keeps waiting, with the hold open).
pub async fn run_retry(state: &Services, job: &ClaimedJob) -> anyhow::Result<Outcome> {
    let mut tx = state.db.begin().await?;
    let Some(order) = orders::get_in(&mut tx, &job.subject_id).await? else {
        return Ok(Outcome::Refused {
            kind: "missing".into(),
            error: format!("order {} does not exist", job.subject_id),
        });
    };
    if order.status == OrderStatus::Cancelled.as_str() {
        return Ok(Outcome::Succeeded);
    }
    reroute(&mut tx, &order, Trigger::Retry, true)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.commit().await?;
    state.wake_workers();
    Ok(Outcome::Succeeded)
}

pub fn router() -> Router<Services> {
    Router::new()
        .route("/holds", get(list))
        .route("/holds/{id}/release", post(release))
}
