//! What comes back from suppliers: acknowledgements, rejections, shipments, and the write-back
//! of each shipment to the storefront the order came from. Shipments are stored by
//! `crate::store::shipments`.

use crate::db::{Tx, new_id};
use crate::routing;
use crate::services::Services;
use crate::store::connections::Connection;
use crate::store::jobs::{self, Attempt, ClaimedJob, JobKind, NewJob, Outcome};
use crate::store::orders::{self, OrderStatus};
use crate::store::shipments::{self, NewShipment};
use crate::store::supplier_orders::{self, SoStatus};
use crate::store::tasks;
use crate::worker::Handler;
use daifa_plugin_host::channel::FulfillmentRequest;
use daifa_plugin_host::supplier::{RejectionCode, SupplierEvent};
use daifa_plugin_host::{Shipment, SupplierOrderRef};
use serde_json::json;

pub struct AppliedEvent {
    /// The order the event concerns (none for a catalogue change).
    pub order_id: Option<String>,
    pub summary: serde_json::Value,
    /// The supplier order a new shipment was stored for (`ingest` then closes the case a
    /// replacement or reship was for).
    pub shipped: Option<String>,
}

/// Applies a supplier's progress on one of its supplier orders (accepted, rejected, shipped)
/// inside the ingest transaction. `Ok(Err(reason))` refuses the request (the supplier named an
/// order or line that is not theirs): nothing is applied. The supplier's other events
/// (after-sales answers, answers to changes, catalogue updates) are routed by
/// `ingest::supplier_events`.
pub async fn apply_progress(
    tx: &mut Tx,
    supplier: &Connection,
    raw_id: &str,
    event: &SupplierEvent,
) -> anyhow::Result<Result<AppliedEvent, String>> {
    let reference = match event {
        SupplierEvent::Accepted(r) => r,
        SupplierEvent::Rejected(r) => &r.order,
        SupplierEvent::Shipped(s) => &s.order,
        _ => anyhow::bail!("not a supplier order's progress"),
    };
    let Some(so) = supplier_order_of(tx, &supplier.id, reference).await? else {
        return Ok(Err(format!(
            "no supplier order `{}` for connection `{}`",
            reference.supplier_order_id, supplier.name
        )));
    };
    // Serializes with a push's answer, a deadline, a cancellation: the status is read again
    // under the order's lock and every move below is a compare-and-set.
    orders::lock(tx, &so.order_id).await?;
    let Some(current) = supplier_orders::current(tx, &so.id).await? else {
        return Ok(Err(format!(
            "supplier order `{}` has an unknown status",
            so.id
        )));
    };
    let external_id = reference.external_id.as_deref();
    let mut new_shipment = None;
    let summary = match event {
        SupplierEvent::Accepted(_) => {
            let moved = supplier_orders::transition_from(
                tx,
                &so.id,
                &[SoStatus::Pending, SoStatus::Held, SoStatus::Submitted],
                SoStatus::Accepted,
                supplier_orders::Change {
                    external_id,
                    reason: None,
                },
            )
            .await?;
            match current {
                // Acknowledged now, or again.
                SoStatus::Pending
                | SoStatus::Held
                | SoStatus::Submitted
                | SoStatus::Accepted
                | SoStatus::Shipped => {
                    if !moved.happened()
                        && let Some(external_id) = external_id
                    {
                        supplier_orders::set_external_id(tx, &so.id, external_id).await?;
                    }
                    orders::record_event(tx, &so.order_id, "supplier_order.accepted", json!({ "supplier_order_id": so.id, "external_id": external_id, "raw_request_id": raw_id })).await?;
                    json!({ "supplier_order_id": so.id, "event": "accepted" })
                }
                found => {
                    late(
                        tx,
                        supplier,
                        &so,
                        "accepted",
                        found,
                        raw_id,
                        json!({ "external_id": external_id }),
                    )
                    .await?
                }
            }
        }
        SupplierEvent::Rejected(r) => {
            orders::record_event(
                tx,
                &so.order_id,
                "supplier_order.rejected",
                json!({ "supplier_order_id": so.id, "reason": r.reason, "code": r.code, "raw_request_id": raw_id }),
            )
            .await?;
            if let Some(external_id) = external_id {
                supplier_orders::set_external_id(tx, &so.id, external_id).await?;
            }
            let reason = format!(
                "supplier `{}` rejected supplier order {}: {}",
                supplier.name, so.id, r.reason
            );
            match r.code {
                // Another supplier would refuse the address too: the operator fixes it first.
                Some(RejectionCode::InvalidAddress) => {
                    if supplier_orders::transition(
                        tx,
                        &so.id,
                        SoStatus::Rejected,
                        supplier_orders::Change {
                            external_id: None,
                            reason: Some(&r.reason),
                        },
                    )
                    .await?
                    .happened()
                    {
                        let policy = channel_routing_policy(tx, &so.order_id).await?;
                        routing::holds::open(
                            tx,
                            &policy,
                            &so.order_id,
                            routing::HoldKind::Address,
                            &reason,
                            "",
                        )
                        .await?;
                    }
                }
                code => {
                    if code == Some(RejectionCode::OutOfStock) {
                        for supplier_sku in supplier_orders::supplier_skus(tx, &so.id).await? {
                            crate::catalogue::mark_out_of_stock(
                                tx,
                                &supplier.id,
                                &supplier_sku,
                                raw_id,
                            )
                            .await?;
                        }
                    }
                    // Moves only a supplier order still live and not being cancelled.
                    routing::fail_over(tx, &so.id, SoStatus::Rejected, &reason).await?;
                }
            }
            json!({ "supplier_order_id": so.id, "event": "rejected" })
        }
        SupplierEvent::Shipped(s) => {
            if let Err(reason) = check_lines(tx, &so.id, &s.shipment).await? {
                return Ok(Err(reason));
            }
            let order_status = orders::status_in(tx, &so.order_id)
                .await?
                .unwrap_or_default();
            let order_cancelled = order_status == OrderStatus::Cancelled.as_str();
            // An after-sales cancel case asked the supplier to stop a parcel of an order that
            // goes on: it shipped first, so the interception failed, and the parcel is the
            // order's like any other.
            if current == SoStatus::CancelRequested && !order_cancelled {
                supplier_orders::transition_from(
                    tx,
                    &so.id,
                    &[SoStatus::CancelRequested],
                    SoStatus::Accepted,
                    supplier_orders::Change::default(),
                )
                .await?;
                orders::record_event(
                    tx,
                    &so.order_id,
                    "supplier_order.shipped_before_cancel",
                    json!({ "supplier_order_id": so.id, "raw_request_id": raw_id }),
                )
                .await?;
            }
            let live = matches!(
                current,
                SoStatus::Pending | SoStatus::Submitted | SoStatus::Accepted | SoStatus::Shipped
            ) || (current == SoStatus::CancelRequested && !order_cancelled);
            if !live || order_cancelled {
                let detail = json!({ "carrier": s.shipment.carrier_code, "tracking_number": s.shipment.tracking_number,
                                     "tracking_url": s.shipment.tracking_url, "lines": s.shipment.lines,
                                     "order_status": order_status });
                late(tx, supplier, &so, "shipped", current, raw_id, detail).await?
            } else {
                let (summary, stored) = shipped(tx, &so, raw_id, external_id, &s.shipment).await?;
                if stored {
                    new_shipment = Some(so.id.clone());
                }
                summary
            }
        }
        _ => anyhow::bail!("not a supplier order's progress"),
    };
    Ok(Ok(AppliedEvent {
        order_id: Some(so.order_id),
        summary,
        shipped: new_shipment,
    }))
}

/// A shipment of a live supplier order: stored once per tracking number, written back to the
/// storefront, registered with the carriers, its clocks started. The answer says whether it
/// was new.
async fn shipped(
    tx: &mut Tx,
    so: &SupplierOrderRow,
    raw_id: &str,
    external_id: Option<&str>,
    shipment: &Shipment,
) -> anyhow::Result<(serde_json::Value, bool)> {
    let shipment_id = new_id("shp");
    let inserted = shipments::insert(
        tx,
        NewShipment {
            id: &shipment_id,
            order_id: &so.order_id,
            supplier_order_id: &so.id,
            carrier_code: &shipment.carrier_code,
            tracking_number: &shipment.tracking_number,
            tracking_url: shipment.tracking_url.as_deref(),
            shipped_at_ms: shipment.shipped_at,
            lines: &serde_json::to_string(&shipment.lines)?,
        },
    )
    .await?;
    if !inserted {
        orders::record_event(
            tx,
            &so.order_id,
            "shipment.received_again",
            json!({ "tracking_number": shipment.tracking_number, "raw_request_id": raw_id }),
        )
        .await?;
        return Ok((
            json!({ "supplier_order_id": so.id, "event": "shipped", "duplicate": true }),
            false,
        ));
    }
    supplier_orders::transition(
        tx,
        &so.id,
        SoStatus::Shipped,
        supplier_orders::Change {
            external_id,
            reason: None,
        },
    )
    .await?;
    orders::set_status(tx, &so.order_id, OrderStatus::Shipped, None)
        .await?
        .expected(&so.order_id, OrderStatus::Shipped);
    let channel_connection_id = orders::channel_in(tx, &so.order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("order {} of a shipment is missing", so.order_id))?;
    jobs::enqueue(
        tx,
        NewJob {
            kind: JobKind::ChannelFulfill,
            idempotency_key: format!("{shipment_id}.fulfill"),
            subject_id: &shipment_id,
            order_id: &so.order_id,
            connection_id: &channel_connection_id,
        },
    )
    .await?;
    crate::tracking::enqueue_registrations(tx, &shipment_id, &so.order_id).await?;
    let policy = crate::routing::context::OrderContext::load(tx, &so.order_id)
        .await?
        .map(|c| c.after_sales)
        .ok_or_else(|| anyhow::anyhow!("order {} of a shipment is missing", so.order_id))?;
    crate::clocks::on_shipped(
        tx,
        &policy,
        &shipment_id,
        &so.order_id,
        &shipment.carrier_code,
        shipment.shipped_at,
    )
    .await?;
    orders::record_event(
        tx,
        &so.order_id,
        "shipment.received",
        json!({ "shipment_id": shipment_id, "supplier_order_id": so.id, "carrier": shipment.carrier_code,
                "tracking_number": shipment.tracking_number, "raw_request_id": raw_id }),
    )
    .await?;
    Ok((
        json!({ "supplier_order_id": so.id, "event": "shipped", "shipment_id": shipment_id }),
        true,
    ))
}

/// A supplier acknowledged or shipped a supplier order that was failed over or cancelled (or
/// whose order was cancelled): it is kept on the timeline, never applied as a state change, and
/// a person is asked to look (a possible double shipment, or goods for a cancelled order).
/// The replacement of a failed-over supplier order is held while it is not pushed yet.
async fn late(
    tx: &mut Tx,
    supplier: &Connection,
    so: &SupplierOrderRow,
    what: &str,
    found: SoStatus,
    raw_id: &str,
    mut detail: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    detail["supplier_order_id"] = json!(so.id);
    detail["supplier"] = json!(supplier.name);
    detail["supplier_order_status"] = json!(found.as_str());
    detail["raw_request_id"] = json!(raw_id);
    let failed_over = matches!(
        found,
        SoStatus::TimedOut | SoStatus::Undeliverable | SoStatus::Rejected
    );
    // A held replacement that ships: the supplier it replaced may ship too.
    let double = failed_over || found == SoStatus::Held;
    orders::record_event(
        tx,
        &so.order_id,
        &format!("supplier_order.late_{what}"),
        detail.clone(),
    )
    .await?;
    if failed_over {
        let held = hold_replacements(tx, so).await?;
        detail["replacements_held"] = json!(held);
    }
    let (kind, title) = match (double, what) {
        (true, _) => (
            "possible_double_shipment",
            format!(
                "Supplier `{}` {what} an order that went to another supplier: make sure only one ships",
                supplier.name
            ),
        ),
        (false, "shipped") => (
            "shipped_after_cancel",
            format!(
                "Supplier `{}` shipped a cancelled order: stop the parcel or have it sent back",
                supplier.name
            ),
        ),
        (false, _) => (
            "accepted_after_cancel",
            format!(
                "Supplier `{}` acknowledged a cancelled order: make sure it does not ship",
                supplier.name
            ),
        ),
    };
    tasks::open(
        tx,
        kind,
        &format!("{}.late_{what}", so.id),
        Some(&so.order_id),
        None,
        &title,
        detail,
    )
    .await?;
    Ok(json!({ "supplier_order_id": so.id, "event": what, "applied": false, "task": kind }))
}

/// Holds the supplier orders that took over `so`'s lines and are not pushed yet, with a
/// `double_shipment` hold on the order: the operator releases it (they are pushed) or cancels.
async fn hold_replacements(tx: &mut Tx, so: &SupplierOrderRow) -> anyhow::Result<Vec<String>> {
    let replacements = supplier_orders::pending_replacements(tx, &so.id).await?;
    let mut held = Vec::new();
    for id in replacements {
        if supplier_orders::transition(tx, &id, SoStatus::Held, supplier_orders::Change::default())
            .await?
            .happened()
        {
            held.push(id);
        }
    }
    if !held.is_empty() {
        let policy = channel_routing_policy(tx, &so.order_id).await?;
        routing::holds::open(
            tx,
            &policy,
            &so.order_id,
            routing::HoldKind::DoubleShipment,
            &format!(
                "supplier order {} was failed over but its supplier went on with it: {} held",
                so.id,
                held.join(", ")
            ),
            "",
        )
        .await?;
    }
    Ok(held)
}

struct SupplierOrderRow {
    id: String,
    order_id: String,
}

async fn supplier_order_of(
    tx: &mut Tx,
    supplier_connection_id: &str,
    r: &SupplierOrderRef,
) -> sqlx::Result<Option<SupplierOrderRow>> {
    Ok(
        supplier_orders::of_supplier(tx, supplier_connection_id, &r.supplier_order_id)
            .await?
            .map(|(id, order_id)| SupplierOrderRow { id, order_id }),
    )
}

/// A shipment may only carry lines of its supplier order, at most in the quantities ordered.
async fn check_lines(
    tx: &mut Tx,
    supplier_order_id: &str,
    shipment: &Shipment,
) -> anyhow::Result<Result<(), String>> {
    if shipment.tracking_number.trim().is_empty() {
        return Ok(Err("shipment has no tracking number".into()));
    }
    let rows = supplier_orders::line_quantities(tx, supplier_order_id).await?;
    for line in &shipment.lines {
        let ordered = rows
            .iter()
            .find_map(|(id, q)| (*id == line.external_line_id).then_some(*q));
        match ordered {
            None => {
                return Ok(Err(format!(
                    "line `{}` is not part of supplier order {supplier_order_id}",
                    line.external_line_id
                )));
            }
            Some(q) if i64::from(line.quantity) > q || line.quantity == 0 => {
                return Ok(Err(format!(
                    "line `{}` ships {} of {q} ordered",
                    line.external_line_id, line.quantity
                )));
            }
            Some(_) => {}
        }
    }
    Ok(Ok(()))
}

/// The `channel.fulfill` job: writes a shipment back to the storefront through the channel
/// connection's plugin.
pub async fn run_fulfill(state: &Services, job: &ClaimedJob) -> anyhow::Result<Attempt> {
    let Some((order_id, shipment)) = shipments::get(&state.db, &job.subject_id).await? else {
        return Ok(Outcome::Refused {
            kind: "missing".into(),
            error: format!("shipment {} does not exist", job.subject_id),
        }
        .into());
    };
    let order = orders::get(&state.db, &order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("order {order_id} of a shipment is missing"))?;
    let (channel, plugin, ctx) = match crate::calls::callee(state, &order.connection_id).await? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome.into()),
    };
    let request = FulfillmentRequest {
        order_external_id: order.external_id.clone(),
        shipment_id: shipment.id.clone(),
        shipment: Shipment {
            lines: shipment.lines.clone(),
            carrier_code: shipment.carrier_code.clone(),
            tracking_number: shipment.tracking_number.clone(),
            tracking_url: shipment.tracking_url.clone(),
            shipped_at: shipment.shipped_at_ms,
        },
        notify_customer: state.settings.fulfillment.notify_customer,
    };
    match plugin.push_fulfillment(ctx, &request).await {
        Ok(fulfillment) => {
            // Committed with the job's completion; a second write-back of the same shipment
            // (the plugin finds the fulfillment it made) moves and records nothing.
            let mut tx = state.db.begin().await?;
            if shipments::mark_written_back(&mut tx, &shipment.id, &fulfillment.external_id).await?
            {
                orders::record_event(
                    &mut tx,
                    &order_id,
                    "fulfillment.written_back",
                    json!({ "shipment_id": shipment.id, "connection": channel.name, "external_id": fulfillment.external_id }),
                )
                .await?;
            }
            Ok(Attempt::done(tx))
        }
        Err(failure) => Ok(crate::calls::outcome_of(failure).into()),
    }
}

/// The routing policy of an order's channel, for the holds a supplier's event opens.
async fn channel_routing_policy(
    tx: &mut Tx,
    order_id: &str,
) -> anyhow::Result<crate::policy::RoutingPolicy> {
    Ok(crate::routing::context::OrderContext::load(tx, order_id)
        .await?
        .map(|c| c.routing)
        .unwrap_or_default())
}

/// The jobs of this stage: the write-back of a shipment to the storefront.
pub fn jobs() -> Vec<Handler> {
    vec![Handler {
        kind: JobKind::ChannelFulfill,
        prepare: None,
        run: |s, job| Box::pin(run_fulfill(s, job)),
        on_dead: None,
    }]
}
