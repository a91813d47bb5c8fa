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

use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::jobs::{self, JobKind, NewJob};
use crate::orders::{self, OrderStatus, StoredOrder};
use crate::routing::SoStatus;
use crate::routing::status::{self, Change};
use crate::tasks;
use serde::Serialize;
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
    for (id, mut current, supplier) in crate::routing::statuses_of(tx, order_id).await? {
        // A push worker does not hold the order's lock: a lost race is read again once.
        for _ in 0..2 {
            let moved = match current {
                SoStatus::Pending | SoStatus::Held => {
                    status::transition_from(
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
                    status::transition_from(
                        tx,
                        &id,
                        &[SoStatus::Submitted, SoStatus::Accepted],
                        SoStatus::CancelRequested,
                        Change::default(),
                    )
                    .await?
                }
                _ => status::Moved::Yes,
            };
            match moved {
                status::Moved::Yes => break,
                status::Moved::No(Some(now)) => current = now,
                status::Moved::No(None) => break,
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
    /// the order, and a task says to cancel it there.
    Operator { name: &'a str },
}

/// The operator cancels an order that has not shipped (`POST /orders/{id}/cancel`, or a
/// stock-out's "cancel" choice): a shipped, delivered or cancelled order is a conflict.
pub async fn by_operator(
    tx: &mut Tx,
    order: &StoredOrder,
    by: &str,
    reason: Option<&str>,
) -> ApiResult<Cancelled> {
    if matches!(order.status.as_str(), "shipped" | "delivered" | "cancelled") {
        return Err(ApiError::Conflict(format!(
            "order `{}` is {}: it cannot be cancelled here",
            order.id, order.status
        )));
    }
    Ok(cancel_order(tx, &order.id, By::Operator { name: by }, reason).await?)
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
        By::Operator { name } => detail["by"] = json!(name),
    }
    let cancelled = stopped.shipped.is_empty()
        && orders::set_status(tx, order_id, OrderStatus::Cancelled, None)
            .await?
            .happened();
    if cancelled {
        let who = match by {
            By::Storefront { .. } => "storefront",
            By::Operator { name } => name,
        };
        crate::routing::holds::cancel_open(tx, order_id, who, reason).await?;
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
    if let By::Operator { .. } = by {
        tasks::open(
            tx,
            "cancel_on_storefront",
            &format!("{order_id}.cancel_on_storefront"),
            Some(order_id),
            None,
            "Cancel the order on its storefront too (Daifa cancelled it for its suppliers)",
            detail,
        )
        .await?;
    }
    Ok(Cancelled { cancelled, stopped })
}
