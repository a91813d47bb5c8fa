//! A storefront's later copy of an order: `orders/updated`, `orders/paid`, an address the buyer
//! corrected, a line the shop removed. Storefronts resend orders routinely; a copy is applied
//! only when its update time (`updated-at`) is later than the stored copy's, and what changed
//! is applied where the order is in its life:
//!
//! - **no supplier has it** (on hold, or its pushes not taken by a worker yet, which are
//!   withdrawn): the order is routed again from the new copy. Its withdrawn supplier orders are
//!   cancelled unsent and its open holds closed as superseded; a check that still fails holds it
//!   again. This is how a payment hold ends when the storefront says the order is paid.
//! - **a supplier has it (or may: a push is on its way), not shipped**: each such supplier order
//!   is sent the change (`dispatch::update`, the supplier's `update-order`; a supplier that
//!   cannot take changes leaves a task for the shop); supplier orders not pushed yet take the new
//!   quantities, and their pushes read the new copy.
//! - **shipped**: a task; the parcel is gone.
//!
//! Every change is on the timeline (`order.updated`) with its old and new values. A copy without
//! an update time is not comparable: the first copy rules, as before WIT 0.4.

use crate::db::{Tx, now_ms};
use crate::dispatch;
use crate::routing;
use crate::routing::context::OrderContext;
use crate::store::orders::{self, OrderStatus};
use crate::store::supplier_orders::{self, SoStatus};
use crate::store::{jobs, tasks};
use daifa_plugin_host::{Order, OrderLine};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// One field of an order that changed, with its old and new values as the timeline shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `ship-to`, `lines`, `buyer-note`, `customer` (the names `update-request` uses) or
    /// `payment`.
    pub field: &'static str,
    pub old: Value,
    pub new: Value,
}

/// What changed between two copies of an order, in the fields that matter to shipping and to
/// payment. Titles and prices are kept with the copy but change nothing here.
pub fn diff(old: &Order, new: &Order) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut compare = |field, old: Value, new: Value| {
        if old != new {
            changes.push(Change { field, old, new });
        }
    };
    compare(
        "ship-to",
        json!(old.shipping_address),
        json!(new.shipping_address),
    );
    compare("lines", lines_value(&old.lines), lines_value(&new.lines));
    compare("buyer-note", json!(old.buyer_note), json!(new.buyer_note));
    compare("customer", json!(old.customer), json!(new.customer));
    compare(
        "payment",
        json!(orders::payment_name(old.payment)),
        json!(orders::payment_name(new.payment)),
    );
    changes
}

/// Lines as `{line id: {sku, quantity, note}}`: what a supplier ships.
fn lines_value(lines: &[OrderLine]) -> Value {
    let map: BTreeMap<&str, Value> = lines
        .iter()
        .map(|l| {
            (
                l.external_line_id.as_str(),
                json!({ "sku": l.storefront_sku, "quantity": l.quantity, "note": l.note }),
            )
        })
        .collect();
    json!(map)
}

/// Whether `copy` is later than `stored` by the storefront's update time.
pub fn is_later(stored: &Order, copy: &Order) -> bool {
    match (stored.updated_at, copy.updated_at) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(a), Some(b)) => b > a,
    }
}

/// Applies a copy of a stored order, inside the ingest transaction. Returns the status the
/// storefront's answer shows for the order (`duplicate`, `unchanged`, `updated`,
/// `changed_after_shipping`, `cancelled`).
///
/// Whether a supplier has the order is decided on the pushes themselves: a push no worker has
/// taken yet is withdrawn (`jobs::withdraw`, a compare-and-set a claim cannot pass), so it
/// cannot go out with the old copy; a push a worker took may have reached the supplier, which
/// is then sent the change once the push is answered.
pub async fn apply_copy(
    tx: &mut Tx,
    order_id: &str,
    copy: &Order,
    raw_id: &str,
    topic: Option<&str>,
) -> anyhow::Result<&'static str> {
    // Serializes with a push's answer, a callback, a cancellation.
    orders::lock(tx, order_id).await?;
    let Some(context) = OrderContext::load(tx, order_id).await? else {
        anyhow::bail!("order {order_id} vanished");
    };
    let (order, old) = (&context.order, &context.canonical);
    let mut detail = json!({ "raw_request_id": raw_id, "topic": topic, "external_id": copy.external_id,
                             "updated_at": copy.updated_at, "stored_updated_at": old.updated_at });
    if !is_later(old, copy) {
        orders::record_event(tx, &order.id, "order.received_again", detail).await?;
        return Ok("duplicate");
    }
    let changes = diff(old, copy);
    orders::replace_canonical(tx, &order.id, copy).await?;
    if changes.is_empty() {
        orders::record_event(tx, &order.id, "order.received_again", detail).await?;
        return Ok("unchanged");
    }
    detail["changes"] = json!(changes);
    orders::record_event(tx, &order.id, "order.updated", detail).await?;
    let status = OrderStatus::parse(&order.status);
    if status == Some(OrderStatus::Cancelled) {
        return Ok("cancelled");
    }
    if !orders::payment_committed(old.payment) && orders::payment_committed(copy.payment) {
        // Paid now: the shipping clocks start.
        crate::clocks::on_order_paid(tx, &context.after_sales, &order.id, now_ms()).await?;
    }
    let blocks = |o: &Order| routing::decide::unpaid(&context.routing.payment, o.payment).is_some();
    let shipping: Vec<&Change> = changes.iter().filter(|c| c.field != "payment").collect();
    let payment_turned = blocks(old) != blocks(copy);
    let supplier_orders = supplier_orders::statuses_of(tx, &order.id).await?;
    let shipped = matches!(status, Some(OrderStatus::Shipped | OrderStatus::Delivered))
        || supplier_orders
            .iter()
            .any(|(_, s, _)| *s == SoStatus::Shipped);
    if shipped {
        if shipping.is_empty() && !(payment_turned && blocks(copy)) {
            return Ok("updated");
        }
        tasks::open(
            tx,
            "changed_after_shipping",
            &format!(
                "{}.changed.{}",
                order.id,
                copy.updated_at.unwrap_or_default()
            ),
            Some(&order.id),
            None,
            "The storefront changed an order after it shipped: tell the customer what was sent",
            json!({ "changes": changes, "raw_request_id": raw_id }),
        )
        .await?;
        return Ok("changed_after_shipping");
    }
    if shipping.is_empty() && !payment_turned {
        return Ok("updated");
    }
    // Take back every push that has not gone out; what remains is with a supplier (or may be).
    let mut withdrawn = Vec::new();
    let mut with_supplier = Vec::new();
    for (id, so_status, supplier) in &supplier_orders {
        match so_status {
            SoStatus::Pending if jobs::withdraw(tx, &submit_key(id)).await? => withdrawn.push(id),
            SoStatus::Pending | SoStatus::Submitted | SoStatus::Accepted => {
                with_supplier.push((id, *so_status, supplier))
            }
            _ => {}
        }
    }
    let held: Vec<&String> = supplier_orders
        .iter()
        .filter(|(_, s, _)| matches!(s, SoStatus::Held | SoStatus::CancelRequested))
        .map(|(id, _, _)| id)
        .collect();
    if with_supplier.is_empty() && held.is_empty() {
        route_again(tx, &context, copy, raw_id, &withdrawn).await?;
        return Ok("updated");
    }
    if payment_turned && blocks(copy) {
        // Nothing more goes out for an order no longer paid: the pushes taken back are
        // cancelled, and the shop decides for what a supplier has.
        for id in &withdrawn {
            cancel_unsent(tx, id, "the storefront says the order is no longer paid").await?;
        }
        tasks::open(
            tx,
            "payment_reversed",
            &format!("{}.payment.{}", order.id, copy.updated_at.unwrap_or_default()),
            Some(&order.id),
            None,
            "The storefront says an order a supplier has is no longer paid: cancel it or collect the payment (what was not sent yet is cancelled: route it by hand if it is paid again)",
            json!({ "payment": orders::payment_name(copy.payment), "raw_request_id": raw_id,
                    "not_sent": withdrawn }),
        )
        .await?;
        withdrawn.clear();
    }
    let names: Vec<&'static str> = shipping.iter().map(|c| c.field).collect();
    for (id, so_status, _) in &supplier_orders {
        let taken_back = withdrawn.contains(&id);
        if !(taken_back || *so_status == SoStatus::Held) {
            continue;
        }
        // Not with the supplier: its push reads the new copy and these quantities.
        if !names.is_empty() {
            let lines = quantities(tx, id, copy).await?;
            supplier_orders::set_line_quantities(tx, id, &lines).await?;
            orders::record_event(
                tx,
                &order.id,
                "supplier_order.changed_before_push",
                json!({ "supplier_order_id": id, "lines": lines }),
            )
            .await?;
            if lines.iter().all(|(_, q)| *q == 0) {
                cancel_unsent(
                    tx,
                    id,
                    "the storefront removed its lines before it was sent",
                )
                .await?;
                continue;
            }
        }
        if taken_back {
            jobs::requeue(tx, &submit_key(id)).await?;
        }
    }
    if !names.is_empty() {
        for (id, so_status, supplier) in &with_supplier {
            let lines = quantities(tx, id, copy).await?;
            // Only what concerns this supplier order: a change of other lines (one added,
            // another supplier's) is not its.
            let own_lines_changed = {
                let now = supplier_orders::line_quantities(tx, id).await?;
                lines
                    .iter()
                    .any(|(line, q)| !now.contains(&(line.clone(), i64::from(*q))))
            };
            let own: Vec<&'static str> = names
                .iter()
                .copied()
                .filter(|n| *n != "lines" || own_lines_changed)
                .collect();
            if own.is_empty() {
                continue;
            }
            // A pending one's push is on its way: the change follows it once it is answered.
            let after_push = *so_status == SoStatus::Pending;
            dispatch::update::request(tx, &order.id, id, supplier, &own, &lines, after_push)
                .await?;
        }
        // Lines with something to ship that no live supplier order carries: new lines, or
        // lines that had nothing to ship before (a quantity of 0 is never routed).
        let mut carried = std::collections::BTreeSet::new();
        for (id, so_status, _) in supplier_orders::statuses_of(tx, &order.id).await? {
            if so_status.is_live() {
                for (line, _) in supplier_orders::line_quantities(tx, &id).await? {
                    carried.insert(line);
                }
            }
        }
        let added: Vec<&str> = copy
            .lines
            .iter()
            .filter(|l| l.quantity > 0 && !carried.contains(&l.external_line_id))
            .map(|l| l.external_line_id.as_str())
            .collect();
        if !added.is_empty() {
            // New lines are with no supplier: they are routed on their own, like the lines of
            // a fail-over (their own supplier orders, or a hold).
            orders::record_event(
                tx,
                &order.id,
                "order.lines_added",
                json!({ "lines": added, "raw_request_id": raw_id }),
            )
            .await?;
            route_copy(tx, &context, copy).await?;
        }
    }
    Ok("updated")
}

/// Cancels a supplier order that was never sent (pending with its push taken back, or held);
/// false when it had moved on.
async fn cancel_unsent(tx: &mut Tx, supplier_order_id: &str, reason: &str) -> anyhow::Result<bool> {
    Ok(supplier_orders::transition_from(
        tx,
        supplier_order_id,
        &[SoStatus::Pending, SoStatus::Held],
        SoStatus::Cancelled,
        supplier_orders::Change {
            external_id: None,
            reason: Some(reason),
        },
    )
    .await?
    .happened())
}

fn submit_key(supplier_order_id: &str) -> String {
    format!("{supplier_order_id}.submit")
}

/// The quantities the new copy gives a supplier order's lines (0: the line is gone).
async fn quantities(
    tx: &mut Tx,
    supplier_order_id: &str,
    copy: &Order,
) -> anyhow::Result<Vec<(String, u32)>> {
    Ok(supplier_orders::line_quantities(tx, supplier_order_id)
        .await?
        .into_iter()
        .map(|(line, _)| {
            let quantity = copy
                .lines
                .iter()
                .find(|l| l.external_line_id == line)
                .map_or(0, |l| l.quantity);
            (line, quantity)
        })
        .collect())
}

/// No supplier has the order: its withdrawn supplier orders are cancelled (never sent), the
/// open holds closed, and the order routed from the new copy.
async fn route_again(
    tx: &mut Tx,
    context: &OrderContext,
    copy: &Order,
    raw_id: &str,
    withdrawn: &[&String],
) -> anyhow::Result<()> {
    let order = &context.order;
    for id in withdrawn {
        if cancel_unsent(
            tx,
            id,
            "the storefront changed the order before it was sent",
        )
        .await?
        {
            orders::record_event(
                tx,
                &order.id,
                "supplier_order.superseded",
                json!({ "supplier_order_id": id, "raw_request_id": raw_id }),
            )
            .await?;
        }
    }
    crate::store::holds::supersede_open(tx, &order.id, raw_id).await?;
    route_copy(tx, context, copy).await
}

/// Routes the lines of the new copy that no supplier has (all of them, or the ones added).
async fn route_copy(tx: &mut Tx, context: &OrderContext, copy: &Order) -> anyhow::Result<()> {
    routing::route(
        tx,
        routing::Request {
            channel_connection_id: &context.order.connection_id,
            policy: &context.routing,
            scope: context.scope(),
            order_id: &context.order.id,
            order: copy,
            trigger: routing::Trigger::Change,
            fresh: false,
            allow_partial: false,
            replaces: None,
            reship: None,
            known_products: None,
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use daifa_plugin_host::{Address, Contact, Money, PaymentStatus};

    fn order(updated_at: Option<i64>) -> Order {
        let usd = |amount_minor| Money {
            amount_minor,
            currency: "USD".into(),
        };
        Order {
            external_id: "1".into(),
            order_number: None,
            storefront: "test".into(),
            currency: "USD".into(),
            subtotal: usd(1000),
            shipping: usd(0),
            tax: usd(0),
            total: usd(1000),
            placed_at: 0,
            buyer_note: None,
            customer: Contact {
                name: Some("Ann".into()),
                email: None,
                phone: None,
            },
            shipping_address: Some(Address {
                name: Some("Ann".into()),
                company: None,
                line1: "1 Main St".into(),
                line2: None,
                city: "Springfield".into(),
                province: None,
                province_code: None,
                postal_code: Some("12345".into()),
                country_code: "US".into(),
                phone: None,
            }),
            lines: vec![OrderLine {
                external_line_id: "L1".into(),
                storefront_sku: "SKU".into(),
                title: "Mug".into(),
                variant_title: None,
                quantity: 2,
                unit_price: usd(500),
                note: None,
            }],
            payment: Some(PaymentStatus::Pending),
            updated_at,
        }
    }

    #[test]
    fn a_copy_is_later_only_by_the_storefronts_update_time() {
        assert!(is_later(&order(Some(1)), &order(Some(2))));
        assert!(!is_later(&order(Some(2)), &order(Some(2))));
        assert!(!is_later(&order(Some(3)), &order(Some(2))));
        // No time on the copy: not comparable, the stored copy rules.
        assert!(!is_later(&order(Some(1)), &order(None)));
        assert!(!is_later(&order(None), &order(None)));
        // A stored copy without a time (an older plugin) yields to one with a time.
        assert!(is_later(&order(None), &order(Some(1))));
    }

    #[test]
    fn the_diff_names_each_field_with_old_and_new_values() {
        let old = order(Some(1));
        let mut new = order(Some(2));
        assert_eq!(diff(&old, &new), []);
        new.lines[0].title = "Mug (new photo)".into();
        new.total.amount_minor = 900;
        assert_eq!(diff(&old, &new), [], "titles and prices do not ship");
        new.shipping_address.as_mut().unwrap().line1 = "2 Elm St".into();
        new.lines[0].quantity = 1;
        new.payment = Some(PaymentStatus::Paid);
        let changes = diff(&old, &new);
        let fields: Vec<_> = changes.iter().map(|c| c.field).collect();
        assert_eq!(fields, ["ship-to", "lines", "payment"]);
        assert_eq!(changes[0].old["line1"], "1 Main St");
        assert_eq!(changes[0].new["line1"], "2 Elm St");
        assert_eq!(changes[1].old["L1"]["quantity"], 2);
        assert_eq!(changes[1].new["L1"]["quantity"], 1);
        assert_eq!(changes[2].old, "pending");
        assert_eq!(changes[2].new, "paid");
    }
}
