#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
//! End-to-end tests: the real gateway on a random port, with the real bundled wasm plugins,
//! against fake Shopify and supplier servers. On SQLite by default; on PostgreSQL when
//! `DAIFA_TEST_DATABASE_URL=postgres://...` names a server (each test creates its own database).

mod aftersales;
mod bad_input;
mod batch;
mod bench;
mod changes;
mod crash;
mod devkit;
mod fakes;
mod helpers;
mod integrity;
mod outage;
mod plugins;
mod polling;
mod routing;
mod sigkill;
mod sweeper;
mod throttle;
mod tracking;
mod walk;

use fakes::{FakeShopify, FakeSupplier};
use helpers::*;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

struct World {
    app: TestApp,
    shopify: FakeShopify,
    supplier: FakeSupplier,
}

async fn world() -> World {
    world_with(|_| {}).await
}

async fn world_with(tweak: impl FnOnce(&mut daifa::Settings)) -> World {
    let shopify = FakeShopify::start(SHOPIFY_TOKEN).await;
    let supplier = FakeSupplier::start(SUPPLIER_SECRET).await;
    let app = TestApp::spawn_with(TestDb::new().await, tweak).await;
    app.set_up_connections(&shopify.base_url, &supplier.url)
        .await;
    World {
        app,
        shopify,
        supplier,
    }
}

/// The published sample order, with a buyer note and a second quantity, re-serialized.
fn sample_with_note() -> (Value, Vec<u8>) {
    let mut order: Value = serde_json::from_slice(&shopify_sample()).unwrap();
    order["note"] = json!("请用礼品包装 / gift wrap, colour: red");
    order["line_items"][1]["quantity"] = json!(3);
    let body = serde_json::to_vec(&order).unwrap();
    (order, body)
}

async fn wait_for_pushes(supplier: &FakeSupplier, n: usize) -> Vec<fakes::ReceivedPush> {
    eventually(&format!("{n} supplier push(es)"), WAIT, || async {
        let r = supplier.received();
        (r.len() >= n).then_some(r)
    })
    .await
}

/// The order's push to its supplier, among its jobs (its clocks are jobs too).
fn submit_job(detail: &Value) -> Value {
    detail["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "supplier.submit")
        .cloned()
        .unwrap_or(Value::Null)
}

async fn only_order(app: &TestApp) -> Value {
    let orders = app.orders().await;
    assert_eq!(orders.len(), 1, "{orders:#?}");
    orders[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_travels_from_shopify_to_the_supplier_and_its_tracking_back() {
    let w = world().await;
    let (order_json, body) = sample_with_note();
    w.shopify.add_order_json(&order_json);

    let r = w
        .app
        .send_shopify("orders/create", "wh-1", &body, SHOPIFY_SECRET)
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // The supplier gets the order: signed, with the lines, quantities, address and note.
    let pushes = wait_for_pushes(&w.supplier, 1).await;
    let push = &pushes[0];
    assert!(
        push.signature_valid,
        "the push must verify with the official standardwebhooks library"
    );
    assert_eq!(push.body["type"], "order.created");
    let data = &push.body["data"];
    assert_eq!(data["buyer_note"], "请用礼品包装 / gift wrap, colour: red");
    assert_eq!(data["order"]["external_id"], "820982911946154508");
    assert_eq!(data["ship_to"]["line1"], "123 Shipping Street");
    assert_eq!(data["ship_to"]["city"], "Shippington");
    assert_eq!(data["ship_to"]["postal_code"], "40003");
    assert_eq!(data["ship_to"]["country_code"], "US");
    assert_eq!(data["ship_to"]["province_code"], "KY");
    let lines = data["lines"].as_array().unwrap();
    let got: Vec<(String, String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["line_id"].as_str().unwrap().to_string(),
                l["supplier_sku"].as_str().unwrap().to_string(),
                l["quantity"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "141249953214522974".to_string(),
                "SUP-IPOD-PINK".to_string(),
                3
            ),
            (
                "866550311766439020".to_string(),
                "SUP-IPOD-PINK".to_string(),
                1
            )
        ]
    );
    assert_eq!(
        lines[0]["unit_price"],
        json!({ "amount_minor": 19900, "currency": "USD" })
    );
    let supplier_order_id = data["supplier_order_id"].as_str().unwrap().to_string();

    // The supplier accepts, then ships both lines under one tracking number.
    let hook = w.app.url(&format!("/hooks/{SUPPLIER_CONNECTION}"));
    let accepted = json!({ "type": "supplier_order.accepted", "timestamp": "2026-11-23T10:00:00Z",
                           "data": { "supplier_order_id": supplier_order_id, "external_id": "SUP-1" } });
    let r = w.supplier.call_back(&hook, "cb-1", &accepted).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let shipped = json!({ "type": "supplier_order.shipped", "timestamp": "2026-11-23T12:00:00Z",
        "data": { "supplier_order_id": supplier_order_id, "external_id": "SUP-1",
                  "shipment": { "carrier": "UPS", "tracking_number": "1Z999AA10123456784",
                                "tracking_url": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
                                "shipped_at": "2026-11-23T11:30:00Z",
                                "lines": [ { "line_id": "866550311766439020", "quantity": 1 }, { "line_id": "141249953214522974", "quantity": 3 } ] } } });
    let r = w.supplier.call_back(&hook, "cb-2", &shipped).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // The storefront gets a fulfillment with the tracking number and the lines.
    let created = eventually("a fulfillment at shopify", WAIT, || async {
        let c = w.shopify.created();
        (!c.is_empty()).then_some(c)
    })
    .await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["trackingInfo"]["number"], "1Z999AA10123456784");
    assert_eq!(created[0]["trackingInfo"]["company"], "UPS");
    let mut items: Vec<(String, i64)> =
        created[0]["lineItemsByFulfillmentOrder"][0]["fulfillmentOrderLineItems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["id"].as_str().unwrap().to_string(),
                    i["quantity"].as_i64().unwrap(),
                )
            })
            .collect();
    items.sort();
    assert_eq!(
        items,
        [
            (
                "gid://shopify/FulfillmentOrderLineItem/141249953214522974".to_string(),
                3
            ),
            (
                "gid://shopify/FulfillmentOrderLineItem/866550311766439020".to_string(),
                1
            )
        ]
    );

    // The timeline tells the whole story.
    let order = only_order(&w.app).await;
    let detail = eventually("the shipment written back", WAIT, || async {
        let d = w.app.order(order["id"].as_str().unwrap()).await;
        (d["shipments"][0]["status"] == "written_back").then_some(d)
    })
    .await;
    assert_eq!(detail["order"]["status"], "shipped");
    assert_eq!(
        detail["shipments"][0]["external_id"],
        "gid://shopify/Fulfillment/255858046"
    );
    // Tasks the clocks opened (the sample shipped days ago: its follow-up is due) aside.
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .filter(|k| !k.starts_with("task."))
        .collect();
    assert_eq!(
        kinds,
        [
            "order.received",
            "order.routed",
            "supplier_order.submitted",
            "supplier_order.accepted",
            "shipment.received",
            "fulfillment.written_back"
        ]
    );
    assert_eq!(detail["supplier_orders"][0]["status"], "shipped");
    assert_eq!(detail["supplier_orders"][0]["external_id"], "SUP-1");
    assert!(
        detail["raw_requests"].as_array().unwrap().len() >= 3,
        "the order's webhook and both callbacks are kept"
    );
    let mut kinds: Vec<&str> = detail["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    // The acknowledgement deadline waits (a day by default) and finds the order accepted; the
    // service clocks wait for their times (shipped within a day of payment, marked shipped
    // within 3 days; the follow-up, the promised time and 40 days without tracking after the
    // shipment).
    assert_eq!(
        kinds,
        [
            "channel.fulfill",
            "clock.delivery_promise",
            "clock.follow_up",
            "clock.mark_shipped",
            "clock.no_tracking",
            "clock.ship",
            "supplier.ack_deadline",
            "supplier.submit"
        ]
    );
    // The sample shipped on 2026-11-23: its follow-up (7 days, UPS is express) is due, and
    // finds the parcel not delivered: a task for the operator.
    let tasks = eventually("the follow-up task", WAIT, || async {
        let t = w.app.get_json("/api/v1/tasks").await;
        let tasks = t["tasks"].as_array().cloned().unwrap_or_default();
        tasks
            .iter()
            .any(|t| t["kind"] == "tracking_follow_up")
            .then_some(tasks)
    })
    .await;
    assert!(
        tasks.iter().all(|t| t["kind"] != "ship_late"),
        "it shipped in time: {tasks:?}"
    );

    // Prometheus metrics (shared by the tests of this process: assert presence, not counts).
    let metrics = w
        .app
        .http
        .get(w.app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        r#"daifa_inbound_requests_total{connection="shop",outcome="accepted"}"#,
        r#"daifa_inbound_requests_total{connection="supplier",outcome="accepted"}"#,
        r#"daifa_job_attempts_total{kind="supplier.submit",outcome="succeeded"}"#,
        r#"daifa_job_attempts_total{kind="channel.fulfill",outcome="succeeded"}"#,
        r#"daifa_plugin_calls_total{plugin="shopify",version="0.5.0",connection="shop",function="handle-inbound"}"#,
        r#"daifa_plugin_calls_total{plugin="webhook-supplier",version="0.3.0",connection="supplier",function="submit-order"}"#,
        r#"daifa_plugin_call_duration_seconds_bucket{plugin="shopify",version="0.5.0",connection="shop",function="push-fulfillment",le="#,
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from /metrics:\n{metrics}"
        );
    }
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_sample_payload_is_accepted_verbatim() {
    let w = world().await;
    let body = shopify_sample();
    let r = w
        .app
        .send_shopify("orders/create", "wh-verbatim", &body, SHOPIFY_SECRET)
        .await;
    assert_eq!(r.status(), 200);
    let order = only_order(&w.app).await;
    assert_eq!(order["external_id"], "820982911946154508");
    assert_eq!(order["order_number"], "#9999");
    assert_eq!(order["total_minor"], 38800);
    assert_eq!(order["currency"], "USD");
    let detail = w.app.order(order["id"].as_str().unwrap()).await;
    // The raw payload is kept byte for byte.
    assert_eq!(
        detail["raw_requests"][0]["body"]
            .as_str()
            .unwrap()
            .as_bytes(),
        body.as_slice()
    );
    let canonical = &detail["order"]["canonical"];
    assert_eq!(canonical["lines"].as_array().unwrap().len(), 2);
    assert_eq!(canonical["placed_at"], 1_640_995_200_000i64);
    let pushes = wait_for_pushes(&w.supplier, 1).await;
    assert_eq!(pushes[0].body["data"]["lines"].as_array().unwrap().len(), 2);
    assert_eq!(pushes[0].body["data"]["buyer_note"], Value::Null);
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_hmac_gets_401_routes_nothing_and_is_kept() {
    let w = world().await;
    let (_, body) = sample_with_note();
    let r = w
        .app
        .send_shopify("orders/create", "wh-bad", &body, "not-the-secret")
        .await;
    assert_eq!(r.status(), 401);
    let answer: Value = r.json().await.unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("bad-signature"),
        "{answer}"
    );
    assert!(w.app.orders().await.is_empty());
    let rejected = w.app.get_json("/api/v1/raw-requests?status=rejected").await;
    let rejected = rejected["raw_requests"].as_array().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["status_code"], 401);
    assert_eq!(
        rejected[0]["body"].as_str().unwrap().as_bytes(),
        body.as_slice()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(w.supplier.received().is_empty());
    assert_eq!(w.shopify.request_count(), 0);
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_webhook_twice_makes_one_order_and_one_push() {
    let w = world().await;
    let (_, body) = sample_with_note();
    let first = w
        .app
        .send_shopify("orders/create", "wh-dup", &body, SHOPIFY_SECRET)
        .await;
    assert_eq!(first.status(), 200);
    let second = w
        .app
        .send_shopify("orders/create", "wh-dup", &body, SHOPIFY_SECRET)
        .await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.json::<Value>().await.unwrap()["status"], "duplicate");
    // The storefront re-sends the same order under a new delivery id: still one order.
    let third = w
        .app
        .send_shopify("orders/updated", "wh-other", &body, SHOPIFY_SECRET)
        .await;
    assert_eq!(third.status(), 200);
    assert_eq!(
        third.json::<Value>().await.unwrap()["orders"][0]["status"],
        "duplicate"
    );
    wait_for_pushes(&w.supplier, 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(w.supplier.received().len(), 1);
    assert_eq!(w.app.orders().await.len(), 1);
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplier_answering_500_twice_gets_the_order_on_the_third_try_with_the_same_key() {
    let w = world().await;
    w.supplier.script(&[(500, None), (500, None)]);
    let (_, body) = sample_with_note();
    assert_eq!(
        w.app
            .send_shopify("orders/create", "wh-retry", &body, SHOPIFY_SECRET)
            .await
            .status(),
        200
    );
    let pushes = wait_for_pushes(&w.supplier, 3).await;
    assert!(pushes.iter().all(|p| p.signature_valid));
    let key = &pushes[0].webhook_id;
    assert!(!key.is_empty());
    assert!(
        pushes.iter().all(|p| &p.webhook_id == key),
        "every attempt carries the same idempotency key"
    );
    let order = only_order(&w.app).await;
    let detail = eventually("the push recorded as done", WAIT, || async {
        let d = w.app.order(order["id"].as_str().unwrap()).await;
        (submit_job(&d)["status"] == "succeeded").then_some(d)
    })
    .await;
    let submit = submit_job(&detail);
    let outcomes: Vec<&str> = submit["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "succeeded"]);
    assert_eq!(detail["supplier_orders"][0]["status"], "submitted");
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let w = world().await;
    w.supplier.script(&[(429, Some(2))]);
    let (_, body) = sample_with_note();
    assert_eq!(
        w.app
            .send_shopify("orders/create", "wh-429", &body, SHOPIFY_SECRET)
            .await
            .status(),
        200
    );
    wait_for_pushes(&w.supplier, 2).await;
    let order = only_order(&w.app).await;
    // The second attempt is recorded once its push is answered.
    let log = eventually("two attempts recorded", WAIT, || async {
        let detail = w.app.order(order["id"].as_str().unwrap()).await;
        let log = submit_job(&detail)["attempt_log"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (log.len() == 2).then_some(log)
    })
    .await;
    let gap =
        log[1]["started_at_ms"].as_i64().unwrap() - log[0]["finished_at_ms"].as_i64().unwrap();
    // The schedule says 200 ms; the supplier said 2 s.
    assert!(gap >= 1_900, "second attempt came {gap} ms after the first");
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_sku_puts_the_order_on_hold() {
    let w = world().await;
    let (mut order, _) = sample_with_note();
    order["line_items"][1]["sku"] = json!("NOT-MAPPED-1");
    let body = serde_json::to_vec(&order).unwrap();
    assert_eq!(
        w.app
            .send_shopify("orders/create", "wh-hold", &body, SHOPIFY_SECRET)
            .await
            .status(),
        200
    );
    let o = only_order(&w.app).await;
    assert_eq!(o["status"], "on_hold");
    let reason = o["hold_reason"].as_str().unwrap();
    assert!(reason.contains("(NOT-MAPPED-1): no offer"), "{reason}");
    let holds = w.app.get_json("/api/v1/holds").await;
    assert_eq!(holds["holds"][0]["kind"], "stock_out", "{holds}");
    assert!(holds["holds"][0]["contact_due_at_ms"].is_i64());
    let on_hold = w.app.get_json("/api/v1/orders?status=on_hold").await;
    assert_eq!(on_hold["orders"].as_array().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(w.supplier.received().is_empty());
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparseable_payload_gets_422_with_the_plugins_message_and_is_kept() {
    let w = world().await;
    let body = br#"{"id": "not a number", "line_items": 3}"#;
    let r = w
        .app
        .send_shopify("orders/create", "wh-garbage", body, SHOPIFY_SECRET)
        .await;
    assert_eq!(r.status(), 422);
    let answer: Value = r.json().await.unwrap();
    assert!(
        answer["error"].as_str().unwrap().starts_with("bad-payload"),
        "{answer}"
    );
    let kept = w.app.get_json("/api/v1/raw-requests?status=rejected").await;
    assert_eq!(kept["raw_requests"][0]["status_code"], 422);
    assert!(w.app.orders().await.is_empty());
    // An unknown connection is refused and kept too.
    let r = w
        .app
        .http
        .post(w.app.url("/hooks/nobody"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let kept = w
        .app
        .get_json("/api/v1/raw-requests?connection=nobody")
        .await;
    assert_eq!(kept["raw_requests"].as_array().unwrap().len(), 1);
    w.app.stop().await;
}

/// An order a supplier must not be sent: a line of quantity 0 (a supplier asked to ship
/// nothing), a negative price (goods paid to the buyer). The plugin parses them; the gateway
/// refuses the order with a 422 that says why, keeps the request, and routes nothing. Before,
/// both were routed and pushed to the supplier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_with_a_line_of_quantity_0_a_negative_price_or_a_nul_is_refused_and_kept() {
    let w = world().await;
    let quantity_0: fn(&mut Value) = |line| line["quantity"] = json!(0);
    let negative: fn(&mut Value) = |line| {
        line["price"] = json!("-5.00");
        for bag in ["shop_money", "presentment_money"] {
            line["price_set"][bag]["amount"] = json!("-5.00");
        }
    };
    let cases = [
        (
            "wh-qty-0",
            quantity_0,
            "has a quantity of 0 in the order's first copy",
        ),
        ("wh-negative", negative, "has a negative price"),
        (
            "wh-nul",
            |line| line["title"] = json!("Gift\u{0}card"),
            "text with a NUL character",
        ),
    ];
    for (i, (webhook_id, change, message)) in cases.into_iter().enumerate() {
        let (mut order, _) = sample_with_note();
        order["id"] = json!(8_000_000 + i);
        change(&mut order["line_items"][1]);
        let body = serde_json::to_vec(&order).unwrap();
        let r = w
            .app
            .send_shopify("orders/create", webhook_id, &body, SHOPIFY_SECRET)
            .await;
        assert_eq!(r.status(), 422, "{webhook_id}");
        let answer: Value = r.json().await.unwrap();
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains("produced") && error.contains(message),
            "{webhook_id}: {answer}"
        );
    }
    let kept = w.app.get_json("/api/v1/raw-requests?status=rejected").await;
    let kept = kept["raw_requests"].as_array().unwrap();
    assert_eq!(kept.len(), 3, "every request kept");
    assert!(kept.iter().all(|r| r["status_code"] == 422));
    assert!(w.app.orders().await.is_empty(), "no order stored");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.supplier.received().is_empty(), "nothing pushed");
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_keeps_failing_is_dead_lettered_then_retried_by_the_operator() {
    let w = world().await;
    w.supplier.always_fail(Some(503));
    let (_, body) = sample_with_note();
    assert_eq!(
        w.app
            .send_shopify("orders/create", "wh-dead", &body, SHOPIFY_SECRET)
            .await
            .status(),
        200
    );
    // One attempt and three retries (the test schedule), then dead.
    let dead = eventually("a dead job", WAIT, || async {
        let d = w.app.get_json("/api/v1/jobs?status=dead").await;
        let jobs = d["jobs"].as_array().cloned().unwrap_or_default();
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 4);
    assert_eq!(w.supplier.received_of("order.created").len(), 4);
    // The hold is recorded just after the job is marked dead.
    let order = eventually("the order on hold", WAIT, || async {
        let order = only_order(&w.app).await;
        (order["status"] == "on_hold").then_some(order)
    })
    .await;
    // The only offer failed: its lines have no supplier left.
    let reason = order["hold_reason"].as_str().unwrap();
    assert!(reason.contains("no offer can ship line"), "{reason}");
    assert!(
        reason.contains("this supplier failed this line before"),
        "{reason}"
    );
    let detail = w.app.order(order["id"].as_str().unwrap()).await;
    assert_eq!(detail["supplier_orders"][0]["status"], "undeliverable");
    // A push that may have reached the supplier before failing for good is cancelled there;
    // the supplier cannot be reached for that either, and a task says so (the order is not
    // held a second time for it).
    let task = eventually("a task for the undelivered cancellation", WAIT, || async {
        let t = w
            .app
            .get_json("/api/v1/tasks?kind=cancel_undelivered")
            .await;
        let tasks = t["tasks"].as_array().cloned().unwrap_or_default();
        (!tasks.is_empty()).then_some(tasks)
    })
    .await;
    assert_eq!(
        task[0]["detail"]["supplier_order_id"],
        detail["supplier_orders"][0]["id"]
    );
    assert_eq!(w.supplier.received_of("order.cancel_requested").len(), 4);

    w.supplier.always_fail(None);
    let job_id = dead[0]["id"].as_str().unwrap();
    let r = w
        .app
        .http
        .post(w.app.url(&format!("/api/v1/jobs/{job_id}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually("the fifth push", WAIT, || async {
        (w.supplier.received_of("order.created").len() == 5).then_some(())
    })
    .await;
    let job = eventually("the retried job done", WAIT, || async {
        let j = w.app.get_json(&format!("/api/v1/jobs/{job_id}")).await;
        (j["status"] == "succeeded").then_some(j)
    })
    .await;
    assert_eq!(job["idempotency_key"], dead[0]["idempotency_key"]);
    // The supplier order took its lines back; the stock-out it caused is over.
    let detail = w.app.order(order["id"].as_str().unwrap()).await;
    assert_eq!(detail["supplier_orders"][0]["status"], "submitted");
    assert_eq!(detail["order"]["status"], "routed");
    let holds = w.app.get_json("/api/v1/holds").await;
    assert_eq!(holds["holds"], json!([]), "{holds}");
    // Retrying a job that is not dead is a conflict.
    let r = w
        .app
        .http
        .post(w.app.url(&format!("/api/v1/jobs/{job_id}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_validates_connections_and_mappings() {
    let w = world().await;
    let r = w
        .app
        .post_json(
            "/api/v1/connections",
            &json!({ "name": "shop", "plugin": "shopify" }),
        )
        .await;
    assert_eq!(r.status(), 409);
    let r = w
        .app
        .post_json(
            "/api/v1/connections",
            &json!({ "name": "Bad Name", "plugin": "shopify" }),
        )
        .await;
    assert_eq!(r.status(), 422);
    let r = w
        .app
        .post_json(
            "/api/v1/connections",
            &json!({ "name": "x", "plugin": "no-such-plugin" }),
        )
        .await;
    assert_eq!(r.status(), 422);
    // A second offer for the same SKU stands beside the first; the same offer again replaces it.
    for _ in 0..2 {
        let r = w
            .app
            .post_json("/api/v1/offers", &json!({ "channel": "shop", "storefront_sku": "IPOD2008PINK", "supplier": "supplier", "supplier_sku": "X", "priority": 200 }))
            .await;
        assert_eq!(r.status(), 201);
    }
    let offers = w
        .app
        .get_json("/api/v1/offers?storefront_sku=IPOD2008PINK")
        .await;
    let skus: Vec<&str> = offers["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["supplier_sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["SUP-IPOD-PINK", "X"], "by priority");
    let r = w
        .app
        .post_json("/api/v1/offers", &json!({ "channel": "supplier", "storefront_sku": "A", "supplier": "shop", "supplier_sku": "X" }))
        .await;
    assert_eq!(r.status(), 422);
    let message = r.text().await.unwrap();
    assert!(
        message.contains("`supplier` is a supplier connection, not a channel"),
        "{message}"
    );
    // Secrets never leave the gateway, and are sealed at rest.
    let c = w.app.get_json("/api/v1/connections/shop").await;
    assert_eq!(c["secret_names"], json!(["access_token", "webhook_secret"]));
    assert!(!c.to_string().contains(SHOPIFY_SECRET));
    let stored: String = sqlx::query_scalar("select secrets from connections where name = 'shop'")
        .fetch_one(&w.app.state.db.pool)
        .await
        .unwrap();
    assert!(
        stored.contains("webhook_secret") && stored.contains("v1:"),
        "{stored}"
    );
    assert!(
        !stored.contains(SHOPIFY_SECRET) && !stored.contains(SHOPIFY_TOKEN),
        "{stored}"
    );
    w.app.stop().await;
}

/// Two gateways on one database (as two replicas would run): every order is pushed exactly
/// once, whichever gateway accepted it and whichever worker claimed its job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_on_one_database_push_each_order_exactly_once() {
    let w = world_with(|s| s.jobs.workers = 3).await;
    let db = w.app.db.share();
    let second = TestApp::spawn_with(db, |s| s.jobs.workers = 3).await;
    let sample: Value = serde_json::from_slice(&shopify_sample()).unwrap();
    const ORDERS: u64 = 12;
    for n in 0..ORDERS {
        let mut order = sample.clone();
        order["id"] = json!(1_000_000 + n);
        let body = serde_json::to_vec(&order).unwrap();
        let gateway = if n % 2 == 0 { &w.app.api } else { &second.api };
        let r = gateway
            .send_shopify(
                "orders/create",
                &format!("wh-replica-{n}"),
                &body,
                SHOPIFY_SECRET,
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let pushes = wait_for_pushes(&w.supplier, ORDERS as usize).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pushes_after = w.supplier.received();
    assert_eq!(
        pushes_after.len(),
        pushes.len(),
        "no push after all were done"
    );
    let mut keys: Vec<&str> = pushes_after.iter().map(|p| p.webhook_id.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(
        keys.len(),
        ORDERS as usize,
        "each supplier order pushed exactly once"
    );
    let mut external: Vec<String> = pushes_after
        .iter()
        .map(|p| {
            p.body["data"]["order"]["external_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    external.sort();
    external.dedup();
    assert_eq!(external.len(), ORDERS as usize);
    // Both gateways' workers took part.
    let done = w.app.get_json("/api/v1/jobs?status=succeeded").await;
    let workers: std::collections::BTreeSet<String> = done["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            j["attempt_log"][0]["worker"]
                .as_str()
                .unwrap()
                .rsplit_once("-w")
                .unwrap()
                .0
                .to_string()
        })
        .collect();
    eprintln!("workers that pushed: {workers:?}");
    second.stop().await;
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_requires_the_token_when_one_is_set() {
    let app = TestApp::spawn_with(TestDb::new().await, |s| {
        s.admin_token = Some("s3cret-admin".into())
    })
    .await;
    let r = app
        .http
        .get(app.url("/api/v1/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .get(app.url("/api/v1/orders"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .get(app.url("/api/v1/orders"))
        .bearer_auth("s3cret-admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Hooks are authenticated by their signatures, not by the admin token.
    let r = app
        .http
        .post(app.url("/hooks/nobody"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

/// A plugin cannot reach private addresses unless its connection allows it: the push to a
/// supplier on loopback is refused by the host, dead-lettered at once, and the order held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_reach_private_addresses_unless_its_connection_allows_it() {
    let w = world().await;
    let r = w
        .app
        .post_json(
            "/api/v1/connections",
            &json!({ "name": "strict-supplier", "plugin": "webhook-supplier", "settings": { "url": w.supplier.url },
                     "secrets": { "signing_secret": SUPPLIER_SECRET }, "allowed_hosts": [host_of(&w.supplier.url)] }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = w
        .app
        .post_json("/api/v1/offers", &json!({ "channel": SHOP_CONNECTION, "storefront_sku": "STRICT-1", "supplier": "strict-supplier", "supplier_sku": "S1", "capabilities": ["gift_wrap", "colour_choice"] }))
        .await;
    assert_eq!(r.status(), 201);
    let (mut order, _) = sample_with_note();
    order["line_items"][0]["sku"] = json!("STRICT-1");
    order["line_items"][1]["sku"] = json!("STRICT-1");
    let body = serde_json::to_vec(&order).unwrap();
    assert_eq!(
        w.app
            .send_shopify("orders/create", "wh-strict", &body, SHOPIFY_SECRET)
            .await
            .status(),
        200
    );
    let dead = eventually("the refused push dead-lettered", WAIT, || async {
        let d = w.app.get_json("/api/v1/jobs?status=dead").await;
        d["jobs"].as_array().and_then(|j| j.first().cloned())
    })
    .await;
    assert_eq!(dead["attempts"], 1, "a refused destination is not retried");
    let error = dead["last_error"].as_str().unwrap();
    assert!(error.contains("private"), "{error}");
    assert!(w.supplier.received().is_empty());
    w.app.stop().await;
}
