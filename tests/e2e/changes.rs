//! A storefront's later copies of an order (issue 12, items 6 and 7): only paid orders ship, a
//! copy is applied only when it is later than the stored one, and a change reaches the order
//! where it is: routed again before any supplier has it, sent to the supplier as
//! `order.update_requested` after, a task once it shipped. The promises: an unpaid order is
//! never pushed; an order is pushed once, with its latest address, whatever copies arrive and
//! in whatever order; a supplier that cannot take a change leaves a task, never silence.

use crate::helpers::*;
use crate::routing::{LINE_0, LINE_1, Suppliers, kinds};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A Shopify order of the two sample lines, with SKUs `SKU-A` and `SKU-B`, as the storefront
/// has it at `updated_at`.
fn shop_order(id: u64, financial_status: &str, updated_at: &str) -> Value {
    let mut order: Value = serde_json::from_slice(&shopify_sample()).unwrap();
    order["id"] = json!(id);
    order["line_items"][0]["sku"] = json!("SKU-A");
    order["line_items"][1]["sku"] = json!("SKU-B");
    order["financial_status"] = json!(financial_status);
    order["updated_at"] = json!(updated_at);
    order
}

/// Sends a copy of an order as Shopify would on `topic`; returns the status the gateway's
/// answer gives the order, and its id.
async fn send(w: &Suppliers, topic: &str, webhook_id: &str, order: &Value) -> (String, String) {
    w.shopify.add_order_json(order);
    let r = w
        .app
        .send_shopify(
            topic,
            webhook_id,
            &serde_json::to_vec(order).unwrap(),
            SHOPIFY_SECRET,
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let answer: Value = r.json().await.unwrap();
    let entry = &answer["orders"][0];
    (
        entry["status"].as_str().unwrap().to_string(),
        entry["order_id"].as_str().unwrap().to_string(),
    )
}

async fn start() -> Suppliers {
    let w = Suppliers::start(&["s1"]).await;
    w.offer("SKU-A", "s1", json!({ "priority": 1 })).await;
    w.offer("SKU-B", "s1", json!({ "priority": 1 })).await;
    w
}

/// One supplier offering both SKUs: SKU-A is furniture, SKU-B has no category.
async fn start_with_furniture() -> Suppliers {
    let w = Suppliers::start(&["s1"]).await;
    w.offer(
        "SKU-A",
        "s1",
        json!({ "priority": 1, "category": "furniture" }),
    )
    .await;
    w.offer("SKU-B", "s1", json!({ "priority": 1 })).await;
    w
}

/// Stores a policy document (`aftersales` or `routing`) for the furniture category.
async fn put_furniture_policy(w: &Suppliers, name: &str, document: Value) {
    let r = w
        .app
        .http
        .put(
            w.app
                .url(&format!("/api/v1/policies/{name}?category=furniture")),
        )
        .json(&document)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn holds(w: &Suppliers, order_id: &str, status: &str) -> Vec<String> {
    w.app
        .get_json(&format!(
            "/api/v1/holds?order_id={order_id}&status={status}"
        ))
        .await["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap().to_string())
        .collect()
}

fn events<'a>(detail: &'a Value, kind: &str) -> Vec<&'a Value> {
    detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// Waits until the order's supplier order is in `status`; returns its id.
async fn supplier_order_in(w: &Suppliers, order_id: &str, status: &str) -> Value {
    eventually(&format!("a supplier order {status}"), WAIT, || async {
        let detail = w.app.order(order_id).await;
        detail["supplier_orders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["status"] == status)
            .cloned()
    })
    .await
}

/// Shopify's own sample is voided: an order that is not paid is held, never pushed, until a
/// later copy (`orders/paid`) says it is paid; a copy older than the stored one changes nothing,
/// and the address corrected while it waited is the one the supplier gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_order_waits_for_the_storefront_to_say_paid_and_ships_its_latest_address() {
    init_logs();
    let w = start().await;
    let mut order = shop_order(70001, "pending", "2026-12-06T10:00:00Z");
    let (status, order_id) = send(&w, "orders/create", "chg-1", &order).await;
    assert_eq!(status, "on_hold");
    assert_eq!(holds(&w, &order_id, "open").await, ["payment"]);
    let detail = w.app.order(&order_id).await;
    assert_eq!(detail["order"]["status"], "on_hold");
    assert!(
        detail["order"]["hold_reason"]
            .as_str()
            .unwrap()
            .contains("not paid yet"),
        "{}",
        detail["order"]
    );

    // The buyer corrects the address while the order waits: routed again, held again.
    order["shipping_address"]["address1"] = json!("99 Corrected Street");
    order["updated_at"] = json!("2026-12-06T10:05:00Z");
    let (status, _) = send(&w, "orders/updated", "chg-2", &order).await;
    assert_eq!(status, "updated");
    assert_eq!(holds(&w, &order_id, "open").await, ["payment"]);
    assert_eq!(holds(&w, &order_id, "superseded").await, ["payment"]);
    let detail = w.app.order(&order_id).await;
    let updated = events(&detail, "order.updated");
    assert_eq!(updated.len(), 1);
    let change = &updated[0]["detail"]["changes"][0];
    assert_eq!(change["field"], "ship-to");
    assert_eq!(change["old"]["line1"], "123 Shipping Street");
    assert_eq!(change["new"]["line1"], "99 Corrected Street");

    // A copy older than the stored one (a retry Shopify sent late) says paid: not applied.
    let mut stale = order.clone();
    stale["financial_status"] = json!("paid");
    stale["updated_at"] = json!("2026-12-06T10:01:00Z");
    let (status, _) = send(&w, "orders/paid", "chg-3", &stale).await;
    assert_eq!(status, "duplicate");
    assert_eq!(holds(&w, &order_id, "open").await, ["payment"]);

    // Paid: routed and pushed once, to the corrected address; the shipping clocks start.
    order["financial_status"] = json!("paid");
    order["updated_at"] = json!("2026-12-06T10:10:00Z");
    let (status, _) = send(&w, "orders/paid", "chg-4", &order).await;
    assert_eq!(status, "updated");
    let pushes = w.pushes("s1", 1).await;
    assert_eq!(pushes[0].body["type"], "order.created");
    assert_eq!(
        pushes[0].body["data"]["ship_to"]["line1"],
        "99 Corrected Street"
    );
    supplier_order_in(&w, &order_id, "submitted").await;
    let detail = w.app.order(&order_id).await;
    let paid = events(&detail, "order.updated");
    assert_eq!(paid.len(), 2);
    assert_eq!(paid[1]["detail"]["changes"][0]["field"], "payment");
    assert_eq!(paid[1]["detail"]["changes"][0]["old"], "pending");
    assert_eq!(paid[1]["detail"]["changes"][0]["new"], "paid");
    assert!(holds(&w, &order_id, "open").await.is_empty());
    let clocks: Vec<String> = detail["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(clocks.contains(&"clock.ship".to_string()), "{clocks:?}");

    // The same copy again: nothing new is pushed.
    let (status, _) = send(&w, "orders/updated", "chg-5", &order).await;
    assert_eq!(status, "duplicate");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.supplier("s1").received_of("order.created").len(), 1);
}

/// After the push, a change goes to the supplier as `order.update_requested` with the order as
/// it now is; the supplier applies it, and the supplier order's lines follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_after_the_push_is_sent_to_the_supplier_and_applied() {
    init_logs();
    let w = start().await;
    w.supplier("s1").accept_at_once();
    let mut order = shop_order(70002, "paid", "2026-12-06T10:00:00Z");
    order["line_items"][0]["quantity"] = json!(3);
    let (_, order_id) = send(&w, "orders/create", "chg-a1", &order).await;
    w.pushes("s1", 1).await;
    let so = supplier_order_in(&w, &order_id, "accepted").await;

    // The shop lowers a quantity and the buyer corrects the address.
    order["line_items"][0]["quantity"] = json!(1);
    order["shipping_address"]["address1"] = json!("7 New Road");
    order["updated_at"] = json!("2026-12-06T11:00:00Z");
    let (status, _) = send(&w, "orders/updated", "chg-a2", &order).await;
    assert_eq!(status, "updated");
    let update = eventually("an update at the supplier", WAIT, || async {
        w.supplier("s1").received_of("order.update_requested").pop()
    })
    .await;
    assert!(update.signature_valid);
    let data = &update.body["data"];
    assert_eq!(data["supplier_order_id"], so["id"]);
    let changes: Vec<&str> = data["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(changes, ["ship_to", "lines"]);
    let updated_order = &data["updated_order"];
    assert_eq!(updated_order["ship_to"]["line1"], "7 New Road");
    let quantity_of = |line: &str| {
        updated_order["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["line_id"] == line)
            .map(|l| l["quantity"].as_i64().unwrap())
    };
    assert_eq!(quantity_of(LINE_0), Some(1));
    assert_eq!(quantity_of(LINE_1), Some(1));

    // Applied: the supplier order's line has the new quantity, on the timeline.
    eventually("the update applied", WAIT, || async {
        let detail = w.app.order(&order_id).await;
        kinds(&detail)
            .contains(&"supplier_order.update_applied".to_string())
            .then_some(())
    })
    .await;
    let detail = w.app.order(&order_id).await;
    let line = detail["supplier_orders"][0]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["external_line_id"] == LINE_0)
        .unwrap()
        .clone();
    assert_eq!(line["quantity"], 1);
    // Nothing was pushed again: one order at the supplier.
    assert_eq!(w.supplier("s1").received_of("order.created").len(), 1);
}

/// A supplier that refuses a change (too late), one that answers later, and one on protocol 1.2
/// that does not know the message: the order ships as it was and the shop gets a task, or the
/// later answer is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_the_supplier_refuses_or_cannot_take_is_a_task_and_a_later_answer_is_applied() {
    init_logs();
    let w = start().await;
    w.supplier("s1").accept_at_once();
    let change = |order: &mut Value, at: &str| {
        order["shipping_address"]["address2"] = json!("Flat 3");
        order["updated_at"] = json!(at);
    };

    // Refused.
    w.supplier("s1").answer_updates("refused");
    let mut order = shop_order(70003, "paid", "2026-12-06T10:00:00Z");
    let (_, refused_id) = send(&w, "orders/create", "chg-r1", &order).await;
    supplier_order_in(&w, &refused_id, "accepted").await;
    change(&mut order, "2026-12-06T11:00:00Z");
    send(&w, "orders/updated", "chg-r2", &order).await;
    let task = eventually("an update_refused task", WAIT, || async {
        w.tasks(&refused_id, "update_refused").await.pop()
    })
    .await;
    assert_eq!(task["status"], "open");

    // A supplier on protocol 1.2 answers 400 to a message it does not know: the shop tells it.
    w.supplier("s1").refuse_updates_with(400);
    let mut order = shop_order(70004, "paid", "2026-12-06T10:00:00Z");
    let (_, by_hand_id) = send(&w, "orders/create", "chg-h1", &order).await;
    supplier_order_in(&w, &by_hand_id, "accepted").await;
    change(&mut order, "2026-12-06T11:00:00Z");
    send(&w, "orders/updated", "chg-h2", &order).await;
    let task = eventually("an update_by_hand task", WAIT, || async {
        w.tasks(&by_hand_id, "update_by_hand").await.pop()
    })
    .await;
    assert_eq!(task["detail"]["changes"], json!(["ship-to"]));

    // Pending, then answered by callback.
    w.supplier("s1").answer_updates("pending");
    let mut order = shop_order(70005, "paid", "2026-12-06T10:00:00Z");
    let (_, later_id) = send(&w, "orders/create", "chg-l1", &order).await;
    let so = supplier_order_in(&w, &later_id, "accepted").await;
    change(&mut order, "2026-12-06T11:00:00Z");
    send(&w, "orders/updated", "chg-l2", &order).await;
    let update = eventually("the pending update", WAIT, || async {
        w.supplier("s1")
            .received_of("order.update_requested")
            .into_iter()
            .find(|p| p.body["data"]["supplier_order_id"] == so["id"])
    })
    .await;
    eventually("the update requested", WAIT, || async {
        kinds(&w.app.order(&later_id).await)
            .contains(&"supplier_order.update_requested".to_string())
            .then_some(())
    })
    .await;
    let key = update.body["data"]["idempotency_key"].clone();
    let answer = json!({ "type": "supplier_order.update_answered", "timestamp": "2026-12-06T11:05:00Z",
                         "data": { "supplier_order_id": so["id"], "idempotency_key": key, "applied": true } });
    let r = w.call_back("s1", "chg-l3", answer.clone()).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let detail = w.app.order(&later_id).await;
    assert_eq!(events(&detail, "supplier_order.update_applied").len(), 1);
    // An answer naming an update that is not this supplier order's is refused.
    let mut wrong = answer;
    wrong["data"]["idempotency_key"] = json!("upd_not_ours");
    let r = w.call_back("s1", "chg-l4", wrong).await;
    assert_eq!(r.status(), 422, "{}", r.text().await.unwrap());
}

/// A change to an order that shipped cannot reach the parcel: a task, and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_after_shipping_is_a_task() {
    init_logs();
    let w = start().await;
    w.supplier("s1").accept_at_once();
    let mut order = shop_order(70006, "paid", "2026-12-06T10:00:00Z");
    let (_, order_id) = send(&w, "orders/create", "chg-s1", &order).await;
    let so = supplier_order_in(&w, &order_id, "accepted").await;
    let shipped = json!({ "type": "supplier_order.shipped", "timestamp": "2026-12-06T11:00:00Z",
        "data": { "supplier_order_id": so["id"], "shipment": { "carrier": "YunExpress", "tracking_number": "YT2612060001",
                  "shipped_at": "2026-12-06T10:30:00Z",
                  "lines": [ { "line_id": LINE_0, "quantity": 1 }, { "line_id": LINE_1, "quantity": 1 } ] } } });
    let r = w.call_back("s1", "chg-s2", shipped).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    order["shipping_address"]["address1"] = json!("1 Too Late Lane");
    order["updated_at"] = json!("2026-12-06T12:00:00Z");
    let (status, _) = send(&w, "orders/updated", "chg-s3", &order).await;
    assert_eq!(status, "changed_after_shipping");
    assert_eq!(w.tasks(&order_id, "changed_after_shipping").await.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        w.supplier("s1")
            .received_of("order.update_requested")
            .is_empty()
    );
}

/// The address changes while the push is on its way (the supplier takes 2 s to answer): the
/// push cannot be taken back, so the supplier gets the order once with the old address, then the
/// change once the push is answered — never a second order, never silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_during_the_push_follows_it_to_the_supplier() {
    init_logs();
    let w = start().await;
    w.supplier("s1").delay(Duration::from_secs(2));
    let mut order = shop_order(70007, "paid", "2026-12-06T10:00:00Z");
    let (_, order_id) = send(&w, "orders/create", "chg-f1", &order).await;
    let push = w.pushes("s1", 1).await;
    assert_eq!(
        push[0].body["data"]["ship_to"]["line1"],
        "123 Shipping Street"
    );
    order["shipping_address"]["address1"] = json!("5 Moving Lane");
    order["updated_at"] = json!("2026-12-06T10:01:00Z");
    let (status, _) = send(&w, "orders/updated", "chg-f2", &order).await;
    assert_eq!(status, "updated");
    let update = eventually("the change at the supplier", WAIT, || async {
        w.supplier("s1").received_of("order.update_requested").pop()
    })
    .await;
    assert_eq!(
        update.body["data"]["updated_order"]["ship_to"]["line1"],
        "5 Moving Lane"
    );
    assert_eq!(
        update.body["data"]["supplier_order_id"],
        push[0].body["data"]["supplier_order_id"]
    );
    // It went after the push was answered: the supplier order was with the supplier by then.
    let timeline = eventually("the change applied", WAIT, || async {
        let timeline = kinds(&w.app.order(&order_id).await);
        timeline
            .contains(&"supplier_order.update_applied".to_string())
            .then_some(timeline)
    })
    .await;
    let submitted = timeline
        .iter()
        .position(|k| k == "supplier_order.submitted");
    let applied = timeline
        .iter()
        .position(|k| k == "supplier_order.update_applied");
    assert!(
        submitted.is_some() && applied.is_some() && submitted < applied,
        "{timeline:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.supplier("s1").received_of("order.created").len(), 1);
    assert!(
        w.supplier("s1")
            .received_of("order.cancel_requested")
            .is_empty()
    );
}

/// The order's policies are resolved once, the same way for every stage (`OrderContext`): the
/// shipping clock of a paid order follows its product category's after-sales policy (furniture
/// ships within 72 h at this shop), where it used to take the shop-wide 24 h.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipping_clock_follows_the_orders_category_policy() {
    init_logs();
    let w = start_with_furniture().await;
    put_furniture_policy(&w, "aftersales", json!({ "ship_within": "72h" })).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (_, order_id) = send(
        &w,
        "orders/create",
        "chg-c1",
        &shop_order(70008, "paid", "2026-12-06T10:00:00Z"),
    )
    .await;
    let detail = w.app.order(&order_id).await;
    let clock = detail["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "clock.ship")
        .unwrap_or_else(|| panic!("no shipping clock: {detail:#}"))
        .clone();
    let due_in_hours = (clock["run_at_ms"].as_i64().unwrap() - before) as f64 / 3_600_000.0;
    assert!(
        (71.9..72.1).contains(&due_in_hours),
        "the shipping clock is due in {due_in_hours:.2} h"
    );
}

/// The storefront removes every line a supplier has: that is no change to send but a
/// cancellation; the supplier is asked to cancel, and its supplier order ends cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_every_line_a_supplier_has_asks_it_to_cancel() {
    init_logs();
    let w = start().await;
    w.supplier("s1").accept_at_once();
    let mut order = shop_order(70009, "paid", "2026-12-06T10:00:00Z");
    let (_, order_id) = send(&w, "orders/create", "chg-z1", &order).await;
    let so = supplier_order_in(&w, &order_id, "accepted").await;
    order["line_items"][0]["quantity"] = json!(0);
    order["line_items"][1]["quantity"] = json!(0);
    order["updated_at"] = json!("2026-12-06T11:00:00Z");
    let (status, _) = send(&w, "orders/updated", "chg-z2", &order).await;
    assert_eq!(status, "updated");
    let cancel = eventually("a cancellation at the supplier", WAIT, || async {
        w.supplier("s1").received_of("order.cancel_requested").pop()
    })
    .await;
    assert_eq!(cancel.body["data"]["supplier_order_id"], so["id"]);
    supplier_order_in(&w, &order_id, "cancelled").await;
    assert!(
        w.supplier("s1")
            .received_of("order.update_requested")
            .is_empty()
    );

    // The buyer wants one after all: that line has no supplier now, and is routed again.
    order["line_items"][0]["quantity"] = json!(1);
    order["updated_at"] = json!("2026-12-06T12:00:00Z");
    let (status, _) = send(&w, "orders/updated", "chg-z3", &order).await;
    assert_eq!(status, "updated");
    let push = eventually("the line pushed again", WAIT, || async {
        let created = w.supplier("s1").received_of("order.created");
        (created.len() == 2).then(|| created[1].clone())
    })
    .await;
    assert_ne!(push.body["data"]["supplier_order_id"], so["id"]);
    let lines = push.body["data"]["lines"].as_array().unwrap().clone();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["line_id"], LINE_0);
    assert_eq!(lines[0]["quantity"], 1);
}

/// The same, but the supplier cannot cancel any more: the supplier order goes on as
/// acknowledged, and a task says the buyer's removed lines will ship unless someone stops them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplier_that_cannot_cancel_removed_lines_leaves_a_task() {
    init_logs();
    let w = start().await;
    w.supplier("s1").accept_at_once();
    w.supplier("s1").answer_cancellations("too_late");
    let mut order = shop_order(70010, "paid", "2026-12-06T10:00:00Z");
    let (_, order_id) = send(&w, "orders/create", "chg-r1", &order).await;
    supplier_order_in(&w, &order_id, "accepted").await;
    order["line_items"][0]["quantity"] = json!(0);
    order["line_items"][1]["quantity"] = json!(0);
    order["updated_at"] = json!("2026-12-06T11:00:00Z");
    let (status, _) = send(&w, "orders/updated", "chg-r2", &order).await;
    assert_eq!(status, "updated");
    let task = eventually("a cancel_refused task", WAIT, || async {
        w.tasks(&order_id, "cancel_refused").await.pop()
    })
    .await;
    assert_eq!(task["detail"]["lines_removed"], true, "{task:#}");
    supplier_order_in(&w, &order_id, "accepted").await;
}

/// A change that could not reach the supplier yet is dropped when a later one exists (the later
/// one carries the whole order as it now is); a change the supplier never takes dies into a task
/// to tell it by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_change_supersedes_one_not_sent_yet_and_a_change_that_never_arrives_is_a_task() {
    init_logs();
    let w = start().await;
    w.supplier("s1").accept_at_once();
    let mut order = shop_order(70011, "paid", "2026-12-06T10:00:00Z");
    let (_, order_id) = send(&w, "orders/create", "chg-sup1", &order).await;
    let so = supplier_order_in(&w, &order_id, "accepted").await;
    let sent_for = |flat: &'static str| {
        let w = &w;
        let so = so["id"].clone();
        move || {
            w.supplier("s1")
                .received_of("order.update_requested")
                .into_iter()
                .filter(|p| {
                    p.body["data"]["supplier_order_id"] == so
                        && p.body["data"]["updated_order"]["ship_to"]["line2"] == flat
                })
                .count()
        }
    };

    // The supplier's endpoint is down: the first change is retried…
    w.supplier("s1").refuse_updates_with(503);
    order["shipping_address"]["address2"] = json!("Flat 3");
    order["updated_at"] = json!("2026-12-06T11:00:00Z");
    send(&w, "orders/updated", "chg-sup2", &order).await;
    eventually("the first change tried", WAIT, || async {
        (sent_for("Flat 3")() > 0).then_some(())
    })
    .await;
    // …and the buyer corrects the address again before it got through.
    order["shipping_address"]["address2"] = json!("Flat 4");
    order["updated_at"] = json!("2026-12-06T11:05:00Z");
    send(&w, "orders/updated", "chg-sup3", &order).await;
    let dropped = eventually("the first change dropped", WAIT, || async {
        let detail = w.app.order(&order_id).await;
        events(&detail, "supplier_order.update_dropped")
            .pop()
            .cloned()
    })
    .await;
    assert!(
        dropped["detail"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("superseded by the later change"),
        "{dropped:#}"
    );
    let tries_of_first = sent_for("Flat 3")();
    w.supplier("s1").answer_updates("applied");
    eventually("the later change applied", WAIT, || async {
        let detail = w.app.order(&order_id).await;
        (!events(&detail, "supplier_order.update_applied").is_empty()).then_some(())
    })
    .await;
    assert!(sent_for("Flat 4")() >= 1);
    assert_eq!(
        sent_for("Flat 3")(),
        tries_of_first,
        "the superseded change is not sent again"
    );
    let detail = w.app.order(&order_id).await;
    assert_eq!(events(&detail, "supplier_order.update_applied").len(), 1);

    // The endpoint stays down: the change dies after its retries, and the shop tells the
    // supplier by hand.
    w.supplier("s1").refuse_updates_with(503);
    order["shipping_address"]["address2"] = json!("Flat 5");
    order["updated_at"] = json!("2026-12-06T11:10:00Z");
    send(&w, "orders/updated", "chg-sup4", &order).await;
    let task = eventually("an update_by_hand task", WAIT, || async {
        w.tasks(&order_id, "update_by_hand").await.pop()
    })
    .await;
    assert_eq!(task["detail"]["changes"], json!(["ship-to"]), "{task:#}");
    // Its first try and the three retries of the schedule, then no more.
    assert_eq!(sent_for("Flat 5")(), 4);
    let detail = w.app.order(&order_id).await;
    assert!(
        detail["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["kind"] == "supplier.update" && j["status"] == "dead"),
        "{:#}",
        detail["jobs"]
    );
    // The supplier order was never touched by the undelivered changes.
    assert_eq!(
        supplier_order_in(&w, &order_id, "accepted").await["id"],
        so["id"]
    );
}

/// The routing policy is resolved in the order's scope too (its channel and its product
/// category): where furniture is made to order and paid on delivery at this shop, an unpaid
/// furniture order is routed, while the shop-wide policy held the same order before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routing_policy_follows_the_orders_category() {
    init_logs();
    let w = start_with_furniture().await;
    let (status, held) = send(
        &w,
        "orders/create",
        "chg-cat1",
        &shop_order(70012, "pending", "2026-12-06T10:00:00Z"),
    )
    .await;
    assert_eq!(status, "on_hold");
    assert_eq!(holds(&w, &held, "open").await, ["payment"]);

    put_furniture_policy(
        &w,
        "routing",
        json!({ "payment": { "require_paid": false } }),
    )
    .await;
    let (status, routed) = send(
        &w,
        "orders/create",
        "chg-cat2",
        &shop_order(70013, "pending", "2026-12-06T10:00:00Z"),
    )
    .await;
    assert_eq!(status, "routed");
    assert!(holds(&w, &routed, "open").await.is_empty());
    w.pushes("s1", 1).await;
    // The dry run resolves the policy the same way.
    let dry = w
        .app
        .post_json("/api/v1/routing/dry-run", &json!({ "order_id": held }))
        .await;
    assert_eq!(dry.status(), 200);
    let dry: Value = dry.json().await.unwrap();
    assert_eq!(dry["outcome"]["outcome"], "route", "{dry:#}");
}

/// Which offers may ship a line follows the line's own category, not the order's: lamps ship
/// only from stock their supplier reported, while the order's first line, furniture, sets the
/// order's policy (which takes unknown stock). The lamp has no such offer: the order is held as
/// a stock-out naming it, and the dry run says the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_of_another_category_follows_its_own_routing_policy() {
    init_logs();
    let w = Suppliers::start(&["s1"]).await;
    w.offer(
        "SKU-A",
        "s1",
        json!({ "priority": 1, "category": "furniture" }),
    )
    .await;
    w.offer("SKU-B", "s1", json!({ "priority": 1, "category": "lamps" }))
        .await;
    let r = w
        .app
        .http
        .put(w.app.url("/api/v1/policies/routing?category=lamps"))
        .json(&json!({ "unknown_stock_available": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (status, order_id) = send(
        &w,
        "orders/create",
        "chg-lamp1",
        &shop_order(70015, "paid", "2026-12-06T10:00:00Z"),
    )
    .await;
    assert_eq!(status, "on_hold");
    let open = w
        .app
        .get_json(&format!("/api/v1/holds?order_id={order_id}&status=open"))
        .await;
    let hold = &open["holds"][0];
    assert_eq!(hold["kind"], "stock_out", "{open:#}");
    let reason = hold["reason"].as_str().unwrap();
    assert!(
        reason.contains(LINE_1) && reason.contains("stock unknown"),
        "{reason}"
    );
    assert!(w.supplier("s1").received().is_empty());
    let dry: Value = w
        .app
        .post_json("/api/v1/routing/dry-run", &json!({ "order_id": order_id }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dry["outcome"]["outcome"], "hold", "{dry:#}");
    w.app.stop().await;
}

/// The storefront adds a line to an order its supplier already has: the new line is routed on
/// its own (here to the only supplier that offers it), the supplier that has the order is not
/// sent a change that is not its, and nothing is pushed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_added_after_the_push_is_routed_on_its_own() {
    init_logs();
    let w = Suppliers::start(&["s1", "s2"]).await;
    w.supplier("s1").accept_at_once();
    w.supplier("s2").accept_at_once();
    w.offer("SKU-A", "s1", json!({ "priority": 1 })).await;
    w.offer("SKU-B", "s1", json!({ "priority": 1 })).await;
    w.offer("SKU-C", "s2", json!({ "priority": 1 })).await;
    let mut order = shop_order(70014, "paid", "2026-12-06T10:00:00Z");
    let (_, order_id) = send(&w, "orders/create", "chg-add1", &order).await;
    let first = supplier_order_in(&w, &order_id, "accepted").await;

    let mut added = order["line_items"][0].clone();
    added["id"] = json!(555000111u64);
    added["sku"] = json!("SKU-C");
    order["line_items"].as_array_mut().unwrap().push(added);
    order["updated_at"] = json!("2026-12-06T11:00:00Z");
    let (status, _) = send(&w, "orders/updated", "chg-add2", &order).await;
    assert_eq!(status, "updated");
    let push = w.pushes("s2", 1).await;
    let lines: Vec<&str> = push[0].body["data"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line_id"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["555000111"]);
    eventually("the added line's supplier order accepted", WAIT, || async {
        let detail = w.app.order(&order_id).await;
        (detail["supplier_orders"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "accepted")
            .count()
            == 2)
            .then_some(())
    })
    .await;
    let detail = w.app.order(&order_id).await;
    assert!(kinds(&detail).contains(&"order.lines_added".to_string()));
    // The first supplier keeps its order as it was: no change sent, nothing pushed again.
    assert!(
        w.supplier("s1")
            .received_of("order.update_requested")
            .is_empty()
    );
    assert_eq!(w.supplier("s1").received_of("order.created").len(), 1);
    assert_eq!(w.supplier("s2").received_of("order.created").len(), 1);
    let first_now = detail["supplier_orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == first["id"])
        .unwrap()
        .clone();
    assert_eq!(first_now["lines"].as_array().unwrap().len(), 2);
    // The same copy again changes nothing.
    let (status, _) = send(&w, "orders/updated", "chg-add3", &order).await;
    assert_eq!(status, "duplicate");
    assert_eq!(w.supplier("s2").received_of("order.created").len(), 1);
}
