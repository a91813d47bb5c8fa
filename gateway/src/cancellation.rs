//! One cancellation, whoever asks for it: the storefront (`orders/cancelled`), the operator
//! (`POST /orders/{id}/cancel`, a stock-out's "cancel" choice) or an after-sales cancel case.
//!
//! Under the order's lock, each supplier order of the order is stopped by where it stands:
//! not pushed yet (pending, held) → cancelled, it is never pushed; pushed or acknowledged → the
//! supplier is asked to cancel it (`supplier.cancel`, its answer recorded when it comes);
//! shipped → left to the caller (an intercept through the supplier for a cancel case, a task
//! for a storefront's cancellation). A cancelled order's open holds are closed. A push in
//! flight at that moment finds its supplier order cancelled when it comes back and asks the
//! supplier to cancel in turn (`dispatch`).
//!
//! The storefront is told where it does not know yet: an order the shop cancelled (the operator,
//! a stock-out's "cancel" choice, a cancel case the shop opened) is cancelled on its storefront
//! by the `channel.cancel` job (without the refund when a case pays it),
//! with the refund, restock and notification the routing policy's `storefront_cancel` says. A
//! storefront that cannot (a plugin without `cancel-order`, a refusal, the attempts spent) or a
//! policy that says not to leaves the shop a `cancel_on_storefront` task. A storefront's own
//! cancellation needs neither.

use crate::calls::{callee, outcome_of};
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::routing::context::OrderContext;
use crate::services::Services;
use crate::store::jobs::{self, ClaimedJob, JobKind, NewJob, Outcome};
use crate::store::orders::{self, OrderStatus, StoredOrder};
use crate::store::supplier_orders::{self, Change, SoStatus};
use crate::store::tasks;
use crate::worker::Handler;
use daifa_plugin_host::channel::{CancelOrderRequest, CancelReason};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What became of an order's supplier orders.
#[derive(Debug, Default, Serialize)]
pub struct Stopped {
    /// Supplier orders that were never pushed and now never will be.
    pub never_pushed: Vec<String>,
    /// Supplier orders whose supplier is asked to cancel (or was asked already).
    pub asked: Vec<String>,
    /// Supplier orders already shipped.
    pub shipped: Vec<String>,
}

/// Stops the live supplier orders of an order, inside the caller's transaction. `key` makes
/// the idempotency keys of the cancel requests (one per supplier order and cause); with
/// `intercept_shipped`, suppliers that shipped are asked to stop the parcel too.
pub async fn stop_supplier_orders(
    tx: &mut Tx,
    order_id: &str,
    key: &str,
    intercept_shipped: bool,
) -> anyhow::Result<Stopped> {
    orders::lock(tx, order_id).await?;
    let mut stopped = Stopped::default();
    for (id, mut current, supplier) in supplier_orders::statuses_of(tx, order_id).await? {
        // A push worker does not hold the order's lock: a lost race is read again once.
        for _ in 0..2 {
            let moved = match current {
                SoStatus::Pending | SoStatus::Held => {
                    supplier_orders::transition_from(
                        tx,
                        &id,
                        &[SoStatus::Pending, SoStatus::Held],
                        SoStatus::Cancelled,
                        Change {
                            external_id: None,
                            reason: Some("order cancelled before it was sent"),
                        },
                    )
                    .await?
                }
                SoStatus::Submitted | SoStatus::Accepted => {
                    supplier_orders::transition_from(
                        tx,
                        &id,
                        &[SoStatus::Submitted, SoStatus::Accepted],
                        SoStatus::CancelRequested,
                        Change::default(),
                    )
                    .await?
                }
                _ => supplier_orders::Moved::Yes,
            };
            match moved {
                supplier_orders::Moved::Yes => break,
                supplier_orders::Moved::No(Some(now)) => current = now,
                supplier_orders::Moved::No(None) => break,
            }
        }
        match current {
            SoStatus::Pending | SoStatus::Held => stopped.never_pushed.push(id),
            SoStatus::Submitted | SoStatus::Accepted | SoStatus::CancelRequested => {
                ask_to_cancel(tx, order_id, &id, &supplier, key).await?;
                stopped.asked.push(id);
            }
            SoStatus::Shipped => {
                if intercept_shipped {
                    ask_to_cancel(tx, order_id, &id, &supplier, key).await?;
                }
                stopped.shipped.push(id);
            }
            _ => {}
        }
    }
    Ok(stopped)
}

/// Enqueues a `supplier.cancel` for a supplier order (once per `key`).
pub async fn ask_to_cancel(
    tx: &mut Tx,
    order_id: &str,
    supplier_order_id: &str,
    supplier_connection_id: &str,
    key: &str,
) -> anyhow::Result<()> {
    if jobs::enqueue(
        tx,
        NewJob {
            kind: JobKind::SupplierCancel,
            idempotency_key: format!("{supplier_order_id}.cancel.{key}"),
            subject_id: supplier_order_id,
            order_id,
            connection_id: supplier_connection_id,
        },
    )
    .await?
    {
        orders::record_event(
            tx,
            order_id,
            "supplier_order.cancel_requested",
            json!({ "supplier_order_id": supplier_order_id, "why": key }),
        )
        .await?;
    }
    Ok(())
}

/// Who cancels an order.
#[derive(Debug, Clone, Copy)]
pub enum By<'a> {
    /// The storefront said so (`orders/cancelled`): it knows already.
    Storefront { raw_request_id: &'a str },
    /// The operator (directly, or by a stock-out's "cancel" choice): the storefront still shows
    /// the order, and is asked to cancel it (`channel.cancel`).
    Operator { name: &'a str, cause: Cause },
}

/// Why the shop cancels an order, as storefronts record it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The buyer asked for it.
    Customer,
    /// No supplier can ship it.
    Inventory,
    /// It looks fraudulent.
    Fraud,
    /// The payment was declined or never came.
    Declined,
    #[default]
    Other,
}

impl Cause {
    fn wit(self) -> CancelReason {
        match self {
            Self::Customer => CancelReason::Customer,
            Self::Inventory => CancelReason::Inventory,
            Self::Fraud => CancelReason::Fraud,
            Self::Declined => CancelReason::Declined,
            Self::Other => CancelReason::Other,
        }
    }
}

/// The operator cancels an order that has not shipped (`POST /orders/{id}/cancel`, or a
/// stock-out's "cancel" choice): a shipped, delivered or cancelled order is a conflict.
pub async fn by_operator(
    tx: &mut Tx,
    order: &StoredOrder,
    by: &str,
    cause: Cause,
    reason: Option<&str>,
) -> ApiResult<Cancelled> {
    if matches!(order.status.as_str(), "shipped" | "delivered" | "cancelled") {
        return Err(ApiError::Conflict(format!(
            "order `{}` is {}: it cannot be cancelled here",
            order.id, order.status
        )));
    }
    Ok(cancel_order(tx, &order.id, By::Operator { name: by, cause }, reason).await?)
}

/// What [`cancel_order`] did.
#[derive(Debug, Serialize)]
pub struct Cancelled {
    /// The order is cancelled (false: it had shipped before, in whole or in part).
    pub cancelled: bool,
    #[serde(flatten)]
    pub stopped: Stopped,
}

/// Cancels an order, inside the caller's transaction: what was not pushed is never pushed,
/// every supplier that has the order is asked to cancel it, and the order is cancelled. What
/// shipped already cannot be cancelled here: the order keeps its status and a task asks the
/// shop to intercept the parcel or have it sent back (an after-sales case).
pub async fn cancel_order(
    tx: &mut Tx,
    order_id: &str,
    by: By<'_>,
    reason: Option<&str>,
) -> anyhow::Result<Cancelled> {
    let key = match by {
        By::Storefront { .. } => "storefront",
        By::Operator { .. } => "operator",
    };
    let stopped = stop_supplier_orders(tx, order_id, key, false).await?;
    let mut detail = json!({ "reason": reason, "stopped": &stopped });
    match by {
        By::Storefront { raw_request_id } => {
            detail["by"] = json!("storefront");
            detail["raw_request_id"] = json!(raw_request_id);
        }
        By::Operator { name, cause } => {
            detail["by"] = json!(name);
            detail["cause"] = json!(cause);
        }
    }
    let cancelled = stopped.shipped.is_empty()
        && orders::set_status(tx, order_id, OrderStatus::Cancelled, None)
            .await?
            .happened();
    if cancelled {
        let who = match by {
            By::Storefront { .. } => "storefront",
            By::Operator { name, .. } => name,
        };
        crate::store::holds::cancel_open(tx, order_id, who, reason).await?;
        orders::record_event(tx, order_id, "order.cancelled", detail.clone()).await?;
    } else {
        orders::record_event(
            tx,
            order_id,
            "order.cancelled_after_shipping",
            detail.clone(),
        )
        .await?;
        tasks::open(
            tx,
            "cancelled_after_shipping",
            &format!("{order_id}.cancelled_after_shipping"),
            Some(order_id),
            None,
            "The order was cancelled after a supplier shipped it: intercept the parcel or open a return",
            detail.clone(),
        )
        .await?;
    }
    // The storefront still shows the order open: it is asked to cancel it too.
    if let (By::Operator { name, cause }, true) = (by, cancelled) {
        tell_storefront(
            tx,
            order_id,
            StorefrontCancel {
                by: name,
                cause,
                reason,
                case_id: None,
            },
        )
        .await?;
    }
    Ok(Cancelled { cancelled, stopped })
}

/// What the storefront is told of a cancellation the shop made.
pub struct StorefrontCancel<'a> {
    pub by: &'a str,
    pub cause: Cause,
    /// The operator's words, for the storefront's staff note.
    pub reason: Option<&'a str>,
    /// The cancel case that cancelled the order: it pays the refund itself (`channel.refund`),
    /// so the storefront is not asked to refund.
    pub case_id: Option<&'a str>,
}

/// Asks the order's storefront to cancel it too (`channel.cancel`), once per order, inside the
/// caller's transaction; what to say is kept on the timeline (`order.storefront_cancel_requested`).
pub async fn tell_storefront(
    tx: &mut Tx,
    order_id: &str,
    what: StorefrontCancel<'_>,
) -> anyhow::Result<()> {
    let context = OrderContext::load(tx, order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("order {order_id} vanished"))?;
    let order = &context.order;
    let detail = json!({ "by": what.by, "cause": what.cause, "reason": what.reason, "case_id": what.case_id });
    if !context.routing.storefront_cancel.enabled {
        // The shop cancels on its storefronts itself.
        return cancel_by_hand(
            tx,
            order_id,
            json!({ "why": "the routing policy's storefront_cancel.enabled is false", "cancellation": detail }),
        )
        .await;
    }
    let enqueued = jobs::enqueue(
        tx,
        NewJob {
            kind: JobKind::ChannelCancel,
            idempotency_key: format!("{order_id}.storefront_cancel"),
            subject_id: order_id,
            order_id,
            connection_id: &order.connection_id,
        },
    )
    .await?;
    if enqueued {
        orders::record_event(tx, order_id, REQUESTED, detail).await?;
    }
    Ok(())
}

/// The timeline event that says what to tell the storefront.
const REQUESTED: &str = "order.storefront_cancel_requested";

/// The jobs this stage runs.
pub fn jobs() -> Vec<Handler> {
    vec![Handler {
        kind: JobKind::ChannelCancel,
        prepare: None,
        run: |s, job| Box::pin(async move { run_storefront_cancel(s, job).await.map(Into::into) }),
        on_dead: Some(|tx, job, error| Box::pin(storefront_not_told(tx, job, error))),
    }]
}

/// The `channel.cancel` job: cancels on its storefront an order the shop cancelled, as the
/// routing policy in force for the order says (refund, restock, notify the buyer).
async fn run_storefront_cancel(state: &Services, job: &ClaimedJob) -> anyhow::Result<Outcome> {
    let mut tx = state.db.snapshot().await?;
    let Some(context) = OrderContext::load(&mut tx, &job.subject_id).await? else {
        tx.rollback().await?;
        return Ok(Outcome::Refused {
            kind: "missing".into(),
            error: format!("order {} does not exist", job.subject_id),
        });
    };
    // Why, in the operator's words, as the cancellation recorded it.
    let recorded = orders::events(&mut tx, &job.subject_id)
        .await?
        .into_iter()
        .rev()
        .find(|e| e.kind == REQUESTED)
        .map(|e| e.detail)
        .unwrap_or_default();
    tx.rollback().await?;
    if context.order.status != OrderStatus::Cancelled.as_str() {
        return Ok(Outcome::Succeeded);
    }
    let policy = &context.routing.storefront_cancel;
    if !policy.enabled {
        // Turned off since the job was queued.
        let mut tx = state.db.begin().await?;
        cancel_by_hand(
            &mut tx,
            &job.subject_id,
            json!({ "job_id": job.id, "why": "the routing policy's storefront_cancel.enabled is false" }),
        )
        .await?;
        tx.commit().await?;
        return Ok(Outcome::Succeeded);
    }
    let cause: Cause = serde_json::from_value(recorded["cause"].clone()).unwrap_or_default();
    let request = CancelOrderRequest {
        order_external_id: context.order.external_id.clone(),
        idempotency_key: job.idempotency_key.clone(),
        reason: cause.wit(),
        staff_note: recorded["reason"].as_str().map(str::to_string),
        // A cancel case refunds through its own job.
        refund: policy.refund && recorded["case_id"].is_null(),
        restock: policy.restock,
        notify_customer: policy.notify_customer,
    };
    let (channel, plugin, ctx) = match callee(state, &context.order.connection_id).await? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    match plugin.cancel_storefront_order(ctx, &request).await {
        Ok(answer) => {
            let mut tx = state.db.begin().await?;
            orders::record_event(
                &mut tx,
                &context.order.id,
                "order.cancelled_on_storefront",
                json!({
                    "channel": channel.name,
                    "reference": answer.reference,
                    "already_cancelled": answer.already_cancelled,
                    "refund": request.refund,
                    "restock": request.restock,
                    "notify_customer": request.notify_customer,
                }),
            )
            .await?;
            tx.commit().await?;
            Ok(Outcome::Succeeded)
        }
        Err(failure) => Ok(outcome_of(failure)),
    }
}

/// The storefront could not be told (a plugin without `cancel-order`, a refusal, the attempts
/// spent): on the timeline, and a task.
async fn storefront_not_told(tx: &mut Tx, job: &ClaimedJob, error: &str) -> anyhow::Result<()> {
    let detail = json!({ "job_id": job.id, "error": error });
    orders::record_event(
        tx,
        &job.subject_id,
        "order.storefront_cancel_failed",
        detail.clone(),
    )
    .await?;
    cancel_by_hand(tx, &job.subject_id, detail).await
}

/// The storefront is not told (it could not be, or the policy says not to): the shop cancels the
/// order there by hand.
async fn cancel_by_hand(
    tx: &mut Tx,
    order_id: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    tasks::open(
        tx,
        "cancel_on_storefront",
        &format!("{order_id}.cancel_on_storefront"),
        Some(order_id),
        None,
        "Cancel the order on its storefront by hand (Daifa cancelled it for its suppliers, the storefront was not told)",
        detail,
    )
    .await?;
    Ok(())
}
