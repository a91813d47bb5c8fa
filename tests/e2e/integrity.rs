//! The three promises under ordinary timings (issue 12): no order ships twice, no cancelled
//! order ships, nothing acknowledged is lost. Each test is a fault found in the gateway before
//! the supplier order's status became a compare-and-set table, the cancellation one path and a
//! job's effects part of its completion; each failed on that code.

use crate::helpers::*;
use crate::routing::{LINE_0, LINE_1, Suppliers, kinds};
use daifa::store::jobs::{self, Attempt, JobKind, NewJob, Outcome};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

pub(crate) async fn set_ack_deadline(w: &Suppliers, deadline: &str) {
    w.routing_policy(json!({ "ack_deadline": deadline })).await;
}

/// The storefront cancels an order (Shopify's `orders/cancelled`: the order's JSON with
/// `cancelled_at`).
pub(crate) async fn cancel_on_storefront(
    w: &Suppliers,
    order: &Value,
    webhook_id: &str,
) -> reqwest::Response {
    let mut body = order.clone();
    body["cancelled_at"] = json!("2026-12-06T10:05:00+00:00");
    body["cancel_reason"] = json!("customer");
    w.app
        .send_shopify(
            "orders/cancelled",
            webhook_id,
            &serde_json::to_vec(&body).unwrap(),
            SHOPIFY_SECRET,
        )
        .await
}

/// The cancellations a supplier received, once there is one.
async fn cancels_at(w: &Suppliers, supplier: &str) -> Vec<crate::fakes::ReceivedPush> {
    eventually(&format!("a cancellation at `{supplier}`"), WAIT, || async {
        let c = w.supplier(supplier).received_of("order.cancel_requested");
        (!c.is_empty()).then_some(c)
    })
    .await
}

/// The supplier order id Daifa sent in a push.
fn pushed_id(push: &crate::fakes::ReceivedPush) -> String {
    push.body["data"]["supplier_order_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn accepted(so: &str) -> Value {
    json!({ "type": "supplier_order.accepted", "timestamp": "2026-12-06T10:00:00Z",
            "data": { "supplier_order_id": so, "external_id": "LATE-1" } })
}

fn shipped(so: &str, tracking: &str) -> Value {
    json!({ "type": "supplier_order.shipped", "timestamp": "2026-12-06T11:00:00Z",
            "data": { "supplier_order_id": so, "shipment": { "carrier": "YunExpress", "tracking_number": tracking,
                      "shipped_at": "2026-12-06T10:30:00Z",
                      "lines": [ { "line_id": LINE_0, "quantity": 1 }, { "line_id": LINE_1, "quantity": 1 } ] } } })
}

async fn supplier_order_status(w: &Suppliers, order_id: &str, so: &str) -> String {
    let detail = w.app.order(order_id).await;
    detail["supplier_orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == so)
        .map(|s| s["status"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn wait_status(w: &Suppliers, order_id: &str, so: &str, status: &str) {
    eventually(&format!("supplier order {so} {status}"), WAIT, || async {
        (supplier_order_status(w, order_id, so).await == status).then_some(())
    })
    .await;
}

/// Two suppliers shipped one order: a supplier that acknowledged by callback before answering
/// the push had its `accepted` overwritten by `submitted`, then lost the order at the deadline
/// while it was shipping it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_that_arrives_before_the_push_is_answered_is_kept() {
    init_logs();
    let w = Suppliers::start(&["eager", "spare"]).await;
    set_ack_deadline(&w, "1s").await;
    w.offer("SKU-A", "eager", json!({ "priority": 1 })).await;
    w.offer("SKU-B", "eager", json!({ "priority": 1 })).await;
    w.offer("SKU-A", "spare", json!({ "priority": 9 })).await;
    w.offer("SKU-B", "spare", json!({ "priority": 9 })).await;
    // The supplier's answer to the push takes 2 s; its system calls back at once.
    w.supplier("eager").delay(Duration::from_secs(2));
    let order_id = w.order("wh-eager", ["SKU-A", "SKU-B"], |_| {}).await;
    let push = w.pushes("eager", 1).await;
    let so = pushed_id(&push[0]);
    let r = w.call_back("eager", "eager-ack", accepted(&so)).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    eventually("the push answered", WAIT, || async {
        let detail = w.app.order(&order_id).await;
        kinds(&detail)
            .contains(&"supplier_order.submitted".to_string())
            .then_some(())
    })
    .await;
    // Past the acknowledgement deadline of a push answered `submitted`.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let detail = w.app.order(&order_id).await;
    let sos = detail["supplier_orders"].as_array().unwrap();
    assert_eq!(sos.len(), 1, "{sos:#?}");
    assert_eq!(sos[0]["status"], "accepted");
    assert_eq!(sos[0]["external_id"], "SUP-1", "the push's answer names it");
    let timeline = kinds(&detail);
    assert!(
        !timeline.contains(&"supplier_order.failed_over".to_string()),
        "{timeline:?}"
    );
    assert!(
        !detail["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["kind"] == "supplier.ack_deadline"),
        "an acknowledged order needs no deadline"
    );
    assert!(w.supplier("spare").received().is_empty(), "one supplier");
    w.app.stop().await;
}

/// A storefront's cancellation only marked the order cancelled: the supplier that had it was
/// never told, and its later `shipped` overwrote `cancelled` and was written back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storefront_cancellation_stops_the_supplier_and_a_later_shipment_is_not_applied() {
    init_logs();
    let w = Suppliers::start(&["sup"]).await;
    w.offer("SKU-A", "sup", json!({})).await;
    w.offer("SKU-B", "sup", json!({})).await;
    let mut sent = Value::Null;
    let order_id = w
        .order("wh-cancel", ["SKU-A", "SKU-B"], |o| sent = o.clone())
        .await;
    let push = w.pushes("sup", 1).await;
    let so = pushed_id(&push[0]);
    wait_status(&w, &order_id, &so, "submitted").await;

    let r = cancel_on_storefront(&w, &sent, "wh-cancel-cancelled").await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let cancels = cancels_at(&w, "sup").await;
    assert_eq!(pushed_id(&cancels[0]), so);
    assert!(cancels[0].signature_valid);
    // The fake supplier confirms in its answer.
    wait_status(&w, &order_id, &so, "cancelled").await;
    let detail = w.app.order(&order_id).await;
    assert_eq!(detail["order"]["status"], "cancelled");

    // It ships anyway: kept, not applied.
    let r = w
        .call_back("sup", "sup-shipped", shipped(&so, "YT0000000001"))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let detail = w.app.order(&order_id).await;
    assert_eq!(detail["order"]["status"], "cancelled");
    assert_eq!(supplier_order_status(&w, &order_id, &so).await, "cancelled");
    assert!(detail["shipments"].as_array().unwrap().is_empty());
    assert!(
        !detail["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["kind"] == "channel.fulfill"),
        "nothing written back to the storefront"
    );
    assert!(kinds(&detail).contains(&"supplier_order.late_shipped".to_string()));
    let open = w.tasks(&order_id, "shipped_after_cancel").await;
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(open[0]["detail"]["tracking_number"], "YT0000000001");
    // The same cancellation again changes nothing and asks nobody again.
    let r = cancel_on_storefront(&w, &sent, "wh-cancel-cancelled-2").await;
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.supplier("sup")
            .received_of("order.cancel_requested")
            .len(),
        1
    );
    assert!(w.shopify.created().is_empty());
    w.app.stop().await;
}

/// The storefront cancels an order its supplier has already shipped: the order stays shipped,
/// and the shop gets a cancel case (approved, the supplier is asked to intercept the parcel)
/// and a task; the same cancellation again opens nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storefront_cancellation_after_shipping_opens_a_cancel_case_and_a_task() {
    init_logs();
    let w = Suppliers::start(&["sup"]).await;
    w.offer("SKU-A", "sup", json!({})).await;
    w.offer("SKU-B", "sup", json!({})).await;
    let mut sent = Value::Null;
    let order_id = w
        .order("wh-late-cancel", ["SKU-A", "SKU-B"], |o| sent = o.clone())
        .await;
    let so = pushed_id(&w.pushes("sup", 1).await[0]);
    let r = w
        .call_back("sup", "sup-shipped-first", shipped(&so, "YT0000000002"))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    wait_status(&w, &order_id, &so, "shipped").await;

    for webhook_id in ["wh-late-cancel-cancelled", "wh-late-cancel-cancelled-2"] {
        let r = cancel_on_storefront(&w, &sent, webhook_id).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let detail = w.app.order(&order_id).await;
    assert_eq!(detail["order"]["status"], "shipped");
    assert!(kinds(&detail).contains(&"order.cancelled_after_shipping".to_string()));
    let cases = w
        .app
        .get_json(&format!("/api/v1/cases?order_id={order_id}"))
        .await["cases"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        cases.len(),
        1,
        "one case for both cancellations: {cases:#?}"
    );
    assert_eq!(cases[0]["kind"], "cancel");
    assert_eq!(cases[0]["source"], "storefront");
    assert_eq!(cases[0]["state"], "requested");
    assert_eq!(
        w.tasks(&order_id, "cancelled_after_shipping").await.len(),
        1
    );
    // Nothing was cancelled at the supplier by the storefront's message alone: the parcel is
    // on its way, intercepting it is the case's decision.
    assert!(
        w.supplier("sup")
            .received_of("order.cancel_requested")
            .is_empty()
    );

    // Approved, the supplier is asked to intercept.
    let case_id = cases[0]["id"].as_str().unwrap();
    let r = w
        .app
        .post_json(
            &format!("/api/v1/cases/{case_id}/actions"),
            &json!({ "action": "approve" }),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let cancels = cancels_at(&w, "sup").await;
    assert_eq!(pushed_id(&cancels[0]), so);
    w.app.stop().await;
}

/// The operator cancels while the push is on its way: the supplier order was cancelled as
/// "never pushed", yet the push reached the supplier. The supplier is asked to cancel it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_during_the_push_asks_the_supplier_to_cancel_what_reached_it() {
    init_logs();
    let w = Suppliers::start(&["sup"]).await;
    w.offer("SKU-A", "sup", json!({})).await;
    w.offer("SKU-B", "sup", json!({})).await;
    w.supplier("sup").delay(Duration::from_secs(2));
    let order_id = w.order("wh-inflight", ["SKU-A", "SKU-B"], |_| {}).await;
    let push = w.pushes("sup", 1).await;
    let so = pushed_id(&push[0]);
    let r = cancel_by_operator(&w, &order_id, json!({ "reason": "buyer asked by phone" })).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let cancels = cancels_at(&w, "sup").await;
    assert_eq!(pushed_id(&cancels[0]), so);
    // Asked, then confirmed by the supplier's answer.
    wait_status(&w, &order_id, &so, "cancelled").await;
    let detail = w.app.order(&order_id).await;
    assert_eq!(detail["order"]["status"], "cancelled");
    let timeline = kinds(&detail);
    assert!(
        timeline.contains(&"supplier_order.pushed_after_stop".to_string())
            && timeline.contains(&"supplier_order.cancelled".to_string()),
        "{timeline:?}"
    );
    // The storefront still showed the order: it is cancelled there too, as the policy says.
    let cancelled = storefront_cancellation(&w, &order_id).await;
    assert_eq!(cancelled["reason"], "OTHER");
    assert_eq!(cancelled["staffNote"], "buyer asked by phone");
    assert_eq!(
        cancelled["refundMethod"]["originalPaymentMethodsRefund"],
        true
    );
    assert_eq!(cancelled["restock"], true);
    assert_eq!(cancelled["notifyCustomer"], true);
    assert!(w.tasks(&order_id, "cancel_on_storefront").await.is_empty());
    w.app.stop().await;
}

/// The operator cancels an order (`POST /orders/{id}/cancel` as `mei`).
pub(crate) async fn cancel_by_operator(
    w: &Suppliers,
    order_id: &str,
    body: Value,
) -> reqwest::Response {
    w.app
        .post_as(&format!("/api/v1/orders/{order_id}/cancel"), "mei", &body)
        .await
}

/// The `orderCancel` the fake shop took for a gateway order, once the timeline records it.
async fn storefront_cancellation(w: &Suppliers, order_id: &str) -> Value {
    let detail = eventually(
        "the storefront cancellation on the timeline",
        WAIT,
        || async {
            let detail = w.app.order(order_id).await;
            kinds(&detail)
                .contains(&"order.cancelled_on_storefront".to_string())
                .then_some(detail)
        },
    )
    .await;
    let event = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "order.cancelled_on_storefront")
        .unwrap()
        .clone();
    assert_eq!(event["detail"]["already_cancelled"], false);
    assert!(
        event["detail"]["reference"]
            .as_str()
            .unwrap()
            .starts_with("gid://shopify/Job/"),
        "{event}"
    );
    let external = detail["order"]["external_id"].as_str().unwrap().to_string();
    let all = w.shopify.cancellations();
    assert_eq!(all.len(), 1, "one orderCancel: {all:?}");
    all[&external].clone()
}

/// An operator's cancel of an order no supplier has yet: the shop's cancel reaches Shopify once,
/// with the cause and the policy's options; a storefront that refuses, or a policy that says not
/// to ask, leaves the shop a task instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storefront_is_told_of_an_operator_cancel_or_a_task_says_to_do_it() {
    init_logs();
    let w = Suppliers::start(&["sup"]).await;
    // Nothing can ship SKU-Z: the order is held, never pushed.
    let order_id = w
        .order("wh-cancel-store-1", ["SKU-Z", "SKU-Z"], |_| {})
        .await;
    let r = cancel_by_operator(
        &w,
        &order_id,
        json!({ "reason": "duplicate order", "cause": "customer" }),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let cancelled = storefront_cancellation(&w, &order_id).await;
    assert_eq!(cancelled["reason"], "CUSTOMER");
    assert_eq!(cancelled["staffNote"], "duplicate order");
    assert!(w.supplier("sup").received().is_empty());
    // Cancelling again is a conflict, and Shopify is not asked twice.
    let r = cancel_by_operator(&w, &order_id, json!({})).await;
    assert_eq!(r.status(), 409, "{}", r.text().await.unwrap());
    assert_eq!(w.shopify.cancellations().len(), 1);

    // Shopify refuses (open fulfillments): the job dies at once and leaves a task.
    w.shopify
        .refuse_cancellations("Cannot cancel an order with open fulfillments");
    let second = w
        .order("wh-cancel-store-2", ["SKU-Z", "SKU-Z"], |_| {})
        .await;
    let r = cancel_by_operator(&w, &second, json!({ "cause": "fraud" })).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let tasks = eventually("the cancel_on_storefront task", WAIT, || async {
        let t = w.tasks(&second, "cancel_on_storefront").await;
        (!t.is_empty()).then_some(t)
    })
    .await;
    assert_eq!(tasks.len(), 1);
    assert!(
        tasks[0]["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("open fulfillments"),
        "{}",
        tasks[0]
    );
    let timeline = kinds(&w.app.order(&second).await);
    assert!(
        timeline.contains(&"order.storefront_cancel_failed".to_string())
            && !timeline.contains(&"order.cancelled_on_storefront".to_string()),
        "{timeline:?}"
    );

    // A policy that does not ask the storefront: a task at once, Shopify not called.
    w.routing_policy(json!({ "storefront_cancel": { "enabled": false } }))
        .await;
    let third = w
        .order("wh-cancel-store-3", ["SKU-Z", "SKU-Z"], |_| {})
        .await;
    let before = w.shopify.request_count();
    let r = cancel_by_operator(&w, &third, json!({})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    eventually("the cancel_on_storefront task", WAIT, || async {
        (!w.tasks(&third, "cancel_on_storefront").await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(w.shopify.request_count(), before, "shopify was not called");
    assert_eq!(w.shopify.cancellations().len(), 1);
    // Nothing was queued to fail: the dead jobs are the refused cancellation's only.
    let dead = w.app.get_json("/api/v1/jobs?status=dead").await;
    let dead: Vec<&Value> = dead["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "channel.cancel")
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["order_id"], json!(second));
    w.app.stop().await;
}

/// A fail-over never told the supplier that lost the order; its late `accepted` and `shipped`
/// were applied, and the replacement shipped too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_over_supplier_is_told_to_cancel_and_its_late_answers_hold_the_replacement() {
    init_logs();
    let w = Suppliers::start(&["slow", "spare"]).await;
    set_ack_deadline(&w, "1s").await;
    w.offer("SKU-A", "slow", json!({ "priority": 1 })).await;
    w.offer("SKU-B", "slow", json!({ "priority": 1 })).await;
    w.offer("SKU-A", "spare", json!({ "priority": 9 })).await;
    w.offer("SKU-B", "spare", json!({ "priority": 9 })).await;
    // The replacement's first push is answered "come back in 8 s": it waits, not pushed.
    w.supplier("spare").script(&[(503, Some(8))]);
    let order_id = w.order("wh-late", ["SKU-A", "SKU-B"], |_| {}).await;
    let slow = w.pushes("slow", 1).await;
    let lost = pushed_id(&slow[0]);
    // `slow` does not acknowledge: its lines go to `spare`, and it is told to cancel.
    let cancels = cancels_at(&w, "slow").await;
    assert_eq!(pushed_id(&cancels[0]), lost);
    let spare = w.pushes("spare", 1).await;
    let replacement = pushed_id(&spare[0]);
    assert_ne!(replacement, lost);
    assert_eq!(
        supplier_order_status(&w, &order_id, &lost).await,
        "timed_out"
    );

    // It went on with the order all the same.
    let r = w.call_back("slow", "slow-late-ack", accepted(&lost)).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let detail = w.app.order(&order_id).await;
    assert_eq!(
        supplier_order_status(&w, &order_id, &lost).await,
        "timed_out"
    );
    assert_eq!(
        supplier_order_status(&w, &order_id, &replacement).await,
        "held"
    );
    assert_eq!(detail["order"]["status"], "on_hold");
    assert!(kinds(&detail).contains(&"supplier_order.late_accepted".to_string()));
    let open = w.tasks(&order_id, "possible_double_shipment").await;
    assert_eq!(open.len(), 1, "{open:#?}");
    let holds = w
        .app
        .get_json(&format!("/api/v1/holds?order_id={order_id}"))
        .await;
    let hold = holds["holds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["kind"] == "double_shipment")
        .cloned()
        .expect("a double_shipment hold");

    // The replacement's retry comes due and sends nothing while it is held.
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(w.supplier("spare").received_of("order.created").len(), 1);
    // A late shipment of the lost order is kept, not applied.
    let r = w
        .call_back("slow", "slow-late-ship", shipped(&lost, "YT0000000002"))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let detail = w.app.order(&order_id).await;
    assert!(detail["shipments"].as_array().unwrap().is_empty());
    assert_eq!(detail["order"]["status"], "on_hold");

    // The operator makes sure only one ships, and lets the replacement go.
    let r = w
        .app
        .post_as(
            &format!("/api/v1/holds/{}/release", hold["id"].as_str().unwrap()),
            "mei",
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let pushes = eventually("the replacement pushed", WAIT, || async {
        let p = w.supplier("spare").received_of("order.created");
        (p.len() == 2).then_some(p)
    })
    .await;
    assert_eq!(pushed_id(&pushes[1]), replacement);
    assert_eq!(
        pushes[0].webhook_id, pushes[1].webhook_id,
        "the same push, one webhook id"
    );
    wait_status(&w, &order_id, &replacement, "submitted").await;
    w.app.stop().await;
}

/// A worker whose lease ran out (and whose job another worker took over) used to record its
/// outcome and run the job's dead-letter consequences anyway, in a transaction of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_commits_nothing_of_its_attempt() {
    init_logs();
    let app = TestApp::spawn_with(TestDb::new().await, |s| s.jobs.workers = 0).await;
    let db = &app.state.db;
    let mut tx = db.begin().await.unwrap();
    assert!(
        jobs::enqueue(
            &mut tx,
            NewJob {
                kind: JobKind::RoutingRetry,
                idempotency_key: "lease-test".into(),
                subject_id: "ord_lease",
                order_id: "ord_lease",
                connection_id: "con_lease",
            },
        )
        .await
        .unwrap()
    );
    tx.commit().await.unwrap();
    let first = jobs::claim(db, "w1", Duration::from_millis(1), &[])
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = jobs::claim(db, "w2", Duration::from_secs(60), &[])
        .await
        .unwrap()
        .expect("the expired lease is taken over");
    assert_eq!(first.id, second.id);

    // w1 comes back with an effect and a refusal (which would dead-letter the job).
    let mut effects = db.begin().await.unwrap();
    daifa::store::tasks::open(
        &mut effects,
        "lease_test",
        "lease-test-effect",
        None,
        None,
        "written by the worker that lost its lease",
        json!({}),
    )
    .await
    .unwrap();
    let handlers = daifa::app::handlers().unwrap();
    let finished = |job: &jobs::ClaimedJob, attempt| daifa::worker::Finished {
        job: job.clone(),
        started_at_ms: 0,
        attempt,
        plugin_version: None,
    };
    let lost = daifa::worker::complete(
        &app.state,
        &handlers,
        "w1",
        vec![finished(
            &first,
            Attempt {
                outcome: Outcome::Refused {
                    kind: "test".into(),
                    error: "refused".into(),
                },
                effects: jobs::Effects::Own(effects),
            },
        )],
    )
    .await
    .remove(0)
    .unwrap();
    assert!(lost.is_none(), "w1 no longer holds the job");
    let tasks = daifa::store::tasks::list(db, "all", "", "lease_test")
        .await
        .unwrap();
    assert!(tasks.is_empty(), "w1's effect rolled back: {tasks:?}");
    let job = jobs::get(db, &first.id).await.unwrap().unwrap();
    assert_eq!(job.status, "running", "still w2's");
    assert_eq!(job.attempt_log.len(), 1);
    assert_eq!(job.attempt_log[0].outcome, "lease_lost");

    // w2 completes it, with its effect.
    let mut effects = db.begin().await.unwrap();
    daifa::store::tasks::open(
        &mut effects,
        "lease_test",
        "lease-test-effect",
        None,
        None,
        "written by the worker holding the lease",
        json!({}),
    )
    .await
    .unwrap();
    let disposition = daifa::worker::complete(
        &app.state,
        &handlers,
        "w2",
        vec![finished(&second, Attempt::done(effects))],
    )
    .await
    .remove(0)
    .unwrap()
    .expect("w2 holds the lease");
    assert_eq!(disposition, jobs::Disposition::Done);
    assert_eq!(
        daifa::store::tasks::list(db, "all", "", "lease_test")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        jobs::get(db, &first.id).await.unwrap().unwrap().status,
        "succeeded"
    );
    app.stop().await;
}

/// Attempts completed together share one transaction (one commit for a batch of pushes): one
/// whose effects fail must not take the others' down with it, nor leave anything of its own;
/// one whose lease ran out keeps nothing of its attempt. With a failing effect, and without
/// one (the batch is then first written at once, and the lost lease found by its completion).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_completed_together_keep_each_others_effects_apart() {
    init_logs();
    for with_failing in [true, false] {
        completed_together(with_failing).await;
    }
}

async fn completed_together(with_failing: bool) {
    let app = TestApp::spawn_with(TestDb::new().await, |s| s.jobs.workers = 0).await;
    let db = &app.state.db;
    let mut keys = vec!["together-ok", "together-ok-too", "together-lost"];
    if with_failing {
        keys.push("together-failing");
    }
    let mut tx = db.begin().await.unwrap();
    for key in &keys {
        jobs::enqueue(
            &mut tx,
            NewJob {
                kind: JobKind::RoutingRetry,
                idempotency_key: key.to_string(),
                subject_id: key,
                order_id: key,
                connection_id: "con_together",
            },
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let claimed = jobs::claim_many(db, "w1", Duration::from_secs(60), &[], 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), keys.len(), "one statement claims the batch");
    let job = |key: &str| {
        claimed
            .iter()
            .find(|j| j.idempotency_key == key)
            .unwrap()
            .clone()
    };
    // Another worker takes one over (as when w1's lease ran out).
    let lost = job("together-lost");
    jobs::give_back(db, std::slice::from_ref(&lost), "w1")
        .await
        .unwrap();
    let taken = jobs::claim(db, "w2", Duration::from_secs(60), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.id, lost.id);

    // Each attempt's effect opens a task named after its job and records an event on its
    // order (an insert put off to the batch's end); the failing one then fails.
    let effect = |key: &'static str| -> jobs::Later {
        Box::new(move |tx| {
            Box::pin(async move {
                daifa::store::tasks::open(tx, "together_test", key, None, None, key, json!({}))
                    .await?;
                daifa::store::orders::record_event(tx, key, "together.test", json!({})).await?;
                anyhow::ensure!(key != "together-failing", "the effect of {key} failed");
                Ok(())
            })
        })
    };
    let handlers = daifa::app::handlers().unwrap();
    let batch = keys
        .iter()
        .map(|key| daifa::worker::Finished {
            job: job(key),
            started_at_ms: 0,
            attempt: Attempt::done_later(effect(key)),
            plugin_version: None,
        })
        .collect();
    let completions = daifa::worker::complete(&app.state, &handlers, "w1", batch).await;
    let completion = |key: &str| {
        *completions[keys.iter().position(|k| *k == key).unwrap()]
            .as_ref()
            .unwrap()
    };
    assert_eq!(completion("together-ok"), Some(jobs::Disposition::Done));
    assert_eq!(completion("together-ok-too"), Some(jobs::Disposition::Done));
    assert_eq!(completion("together-lost"), None, "w1 lost that one");

    let tasks: Vec<String> = daifa::store::tasks::list(db, "all", "", "together_test")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t["title"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        tasks,
        ["together-ok", "together-ok-too"],
        "only the completed attempts' effects are kept"
    );
    for key in &keys {
        let kept = *key == "together-ok" || *key == "together-ok-too";
        let mut conn = db.pool.acquire().await.unwrap();
        let events = daifa::store::orders::events(&mut conn, key).await.unwrap();
        assert_eq!(events.len(), usize::from(kept), "{key}: {events:?}");
    }
    for key in ["together-ok", "together-ok-too"] {
        let done = jobs::get(db, &job(key).id).await.unwrap().unwrap();
        assert_eq!(done.status, "succeeded");
        let outcomes: Vec<&str> = done
            .attempt_log
            .iter()
            .map(|a| a.outcome.as_str())
            .collect();
        assert_eq!(outcomes, ["succeeded"], "one attempt recorded, once");
    }
    if with_failing {
        assert!(
            matches!(
                completion("together-failing"),
                Some(jobs::Disposition::RetryAt(_))
            ),
            "a failed effect is a failed attempt, retried"
        );
        let failing = jobs::get(db, &job("together-failing").id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(failing.status, "queued", "retried on the schedule");
        assert_eq!(failing.attempt_log.len(), 1);
        assert_eq!(failing.attempt_log[0].outcome, "retry");
        assert_eq!(
            failing.attempt_log[0].error_kind.as_deref(),
            Some("internal")
        );
        assert!(
            failing.attempt_log[0]
                .error
                .as_deref()
                .unwrap()
                .contains("the effect of together-failing failed"),
            "{:?}",
            failing.attempt_log
        );
    }
    let lost = jobs::get(db, &lost.id).await.unwrap().unwrap();
    assert_eq!(lost.status, "running", "still w2's");
    let outcomes: Vec<&str> = lost
        .attempt_log
        .iter()
        .map(|a| a.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["lease_lost"]);
    app.stop().await;
}

/// The three cancellation paths behaved differently: a storefront's cancellation left the
/// order's holds open (the operator was still asked to contact the customer about a stock-out
/// of a cancelled order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_order_cancelled_by_the_storefront_closes_its_holds_and_is_never_pushed() {
    init_logs();
    let w = Suppliers::start(&["sup"]).await;
    w.offer("SKU-A", "sup", json!({})).await;
    let mut sent = Value::Null;
    // No offer for the second line: a stock-out holds the order.
    let order_id = w
        .order("wh-held", ["SKU-A", "SKU-NONE"], |o| sent = o.clone())
        .await;
    let detail = w.app.order(&order_id).await;
    assert_eq!(detail["order"]["status"], "on_hold");
    let r = cancel_on_storefront(&w, &sent, "wh-held-cancelled").await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let detail = w.app.order(&order_id).await;
    assert_eq!(detail["order"]["status"], "cancelled");
    let holds = w
        .app
        .get_json(&format!("/api/v1/holds?status=all&order_id={order_id}"))
        .await;
    let holds = holds["holds"].as_array().unwrap();
    assert_eq!(holds.len(), 1, "{holds:#?}");
    assert_eq!(holds[0]["status"], "cancelled");
    assert_eq!(holds[0]["resolved_by"], "storefront");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.supplier("sup").received().is_empty());
    w.app.stop().await;
}

/// Two operators release the same hold at the same moment (two browser tabs, a double click):
/// one release routes the order, the other is refused with a 409 and changes nothing. Before,
/// the hold was closed without checking that it was still open, so both were answered 200
/// and the order was routed twice over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_releases_of_one_hold_at_once_route_the_order_once() {
    let w = Suppliers::start(&["sup-a"]).await;
    w.offer("SKU-A", "sup-a", json!({})).await;
    w.offer("SKU-B", "sup-a", json!({})).await;
    w.routing_policy(json!({ "hold_above": { "amount": 100, "currency": "USD" } }))
        .await;
    let order_id = w.order("wh-twice", ["SKU-A", "SKU-B"], |_| {}).await;
    let hold = w.app.get_json("/api/v1/holds").await["holds"][0].clone();
    assert_eq!(hold["kind"], "value", "{hold}");
    let url = format!("/api/v1/holds/{}/release", hold["id"].as_str().unwrap());
    let (first, second) = (
        json!({ "note": "first tab" }),
        json!({ "note": "second tab" }),
    );
    let (a, b) = tokio::join!(
        w.app.post_json(&url, &first),
        w.app.post_json(&url, &second)
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "one release, one refusal");
    w.pushes("sup-a", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.supplier("sup-a").received_of("order.created").len(),
        1,
        "pushed once"
    );
    let detail = w.app.order(&order_id).await;
    assert_eq!(
        detail["supplier_orders"].as_array().unwrap().len(),
        1,
        "{detail:#}"
    );
    let released: Vec<&Value> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "hold.released")
        .collect();
    assert_eq!(released.len(), 1, "one release on the timeline");
    let triggers: Vec<&str> = detail["routing_decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers, ["route", "release"]);
    w.app.stop().await;
}

/// The same, when the push outlives its worker's lease: the worker that reached the supplier
/// lost its lease (its effects, the request to cancel among them, are rolled back), and the
/// worker that took the job over found the supplier order cancelled and sent nothing. The
/// supplier kept an order of a cancelled order. The attempt that takes over asks it to cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_during_a_push_that_outlives_its_lease_still_reaches_the_supplier() {
    init_logs();
    let w = Suppliers::start_with(&["sup"], |s| {
        s.jobs.lease = Duration::from_millis(500);
    })
    .await;
    w.offer("SKU-A", "sup", json!({})).await;
    w.offer("SKU-B", "sup", json!({})).await;
    w.supplier("sup").delay(Duration::from_secs(2));
    let order_id = w.order("wh-lease", ["SKU-A", "SKU-B"], |_| {}).await;
    let push = w.pushes("sup", 1).await;
    let so = pushed_id(&push[0]);
    let r = cancel_by_operator(&w, &order_id, json!({})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let cancels = cancels_at(&w, "sup").await;
    assert_eq!(pushed_id(&cancels[0]), so);
    wait_status(&w, &order_id, &so, "cancelled").await;
    let detail = w.app.order(&order_id).await;
    let attempts: Vec<&str> = detail["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "supplier.submit")
        .flat_map(|j| j["attempt_log"].as_array().unwrap().iter())
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert!(
        attempts.contains(&"lease_lost"),
        "the first worker lost its lease: {attempts:?}"
    );
    assert_eq!(
        w.supplier("sup").received_of("order.created").len(),
        1,
        "nothing pushed after the cancellation"
    );
    w.app.stop().await;
}
