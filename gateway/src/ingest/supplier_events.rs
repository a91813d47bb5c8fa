//! A supplier's events, each to the stage it concerns: a supplier order's progress (accepted,
//! rejected, shipped) to `fulfilment`; answers to cancellations, returns and inspections to
//! `aftersales`; answers to a change to `dispatch::update`; catalogue updates to `catalogue`.
//! Everything is applied inside the ingest transaction of the request that carried it.

use crate::db::Tx;
use crate::fulfilment::{self, AppliedEvent};
use crate::store::connections::Connection;
use crate::store::supplier_orders;
use crate::{aftersales, dispatch};
use daifa_plugin_host::SupplierOrderRef;
use daifa_plugin_host::supplier::SupplierEvent;

/// Applies one supplier event. `Ok(Err(reason))` refuses the request (the supplier named an
/// order or line that is not theirs): nothing is applied.
pub async fn apply(
    tx: &mut Tx,
    supplier: &Connection,
    raw_id: &str,
    event: &SupplierEvent,
) -> anyhow::Result<Result<AppliedEvent, String>> {
    let about = |summary| AppliedEvent {
        order_id: None,
        summary,
        shipped: None,
    };
    match event {
        SupplierEvent::Accepted(_) | SupplierEvent::Rejected(_) | SupplierEvent::Shipped(_) => {
            let applied = fulfilment::apply_progress(tx, supplier, raw_id, event).await?;
            if let Ok(AppliedEvent {
                shipped: Some(supplier_order_id),
                ..
            }) = &applied
            {
                // A replacement or reship shipped: its case is done.
                aftersales::on_replacement_shipped(tx, supplier_order_id).await?;
            }
            Ok(applied)
        }
        SupplierEvent::Cancelled(c) => {
            if let Err(reason) = theirs(tx, supplier, &c.order).await? {
                return Ok(Err(reason));
            }
            let summary = aftersales::on_cancellation(
                tx,
                &c.order.supplier_order_id,
                c.accepted,
                c.reason.as_deref(),
            )
            .await?;
            Ok(Ok(about(summary)))
        }
        SupplierEvent::ReturnReceived(r) => {
            if let Err(reason) = theirs(tx, supplier, &r.order).await? {
                return Ok(Err(reason));
            }
            Ok(aftersales::on_return_received(
                tx,
                &r.order.supplier_order_id,
                r.case_id.as_deref(),
                &r.lines,
            )
            .await?
            .map(about))
        }
        SupplierEvent::Inspected(i) => {
            if let Err(reason) = theirs(tx, supplier, &i.order).await? {
                return Ok(Err(reason));
            }
            Ok(aftersales::on_inspected(
                tx,
                &i.order.supplier_order_id,
                i.case_id.as_deref(),
                i.resellable,
                i.defect.as_deref(),
            )
            .await?
            .map(about))
        }
        SupplierEvent::UpdateAnswered(answer) => {
            if let Err(reason) = theirs(tx, supplier, &answer.order).await? {
                return Ok(Err(reason));
            }
            Ok(dispatch::update::on_answer(
                tx,
                &answer.order.supplier_order_id,
                &answer.idempotency_key,
                answer.applied,
                answer.reason.as_deref(),
            )
            .await?
            .map(|summary| AppliedEvent {
                order_id: summary["order_id"].as_str().map(str::to_string),
                summary,
                shipped: None,
            }))
        }
        SupplierEvent::OfferUpdated(update) => {
            if update.supplier_sku.trim().is_empty() {
                return Ok(Err("an offer update names no supplier sku".into()));
            }
            let summary = crate::catalogue::apply_update(tx, &supplier.id, raw_id, update).await?;
            Ok(Ok(about(summary)))
        }
    }
}

/// The supplier order an event names is the supplier's own.
async fn theirs(
    tx: &mut Tx,
    supplier: &Connection,
    order: &SupplierOrderRef,
) -> anyhow::Result<Result<(), String>> {
    Ok(
        match supplier_orders::of_supplier(tx, &supplier.id, &order.supplier_order_id).await? {
            Some(_) => Ok(()),
            None => Err(format!(
                "no supplier order `{}` for connection `{}`",
                order.supplier_order_id, supplier.name
            )),
        },
    )
}
