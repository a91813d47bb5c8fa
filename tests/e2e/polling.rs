//! Polling: a storefront order whose webhook never came is found by polling (the bundled Shopify
//! plugin against the fake Admin API's `orders` query), once; a poll that fails is kept, backed
//! off, and gets through once fixed.

use crate::fakes::{FakeShopify, FakeSupplier};
use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_whose_webhook_never_came_is_found_by_polling_once() {
    let shopify = FakeShopify::start(SHOPIFY_TOKEN).await;
    let supplier = FakeSupplier::start(SUPPLIER_SECRET).await;
    let app = TestApp::spawn_with(TestDb::new().await, |_| {}).await;
    app.set_up_connections(&shopify.base_url, &supplier.url)
        .await;
    let poll = format!("/api/v1/connections/{SHOP_CONNECTION}/poll");
    let state = app.get_json(&poll).await;
    assert_eq!(state["polling"], true, "{state}");

    // The order changes on the storefront after polling began; its webhook is lost. (The
    // published sample carries a cancellation; a live order has none.)
    let mut order: Value = serde_json::from_slice(&shopify_sample()).unwrap();
    order["cancelled_at"] = Value::Null;
    order["cancel_reason"] = Value::Null;
    shopify.add_order_json(&order);
    let changed = time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    shopify.list_order(
        &order,
        &changed
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
    );
    let r = app.post_json(&poll, &json!({})).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    // Polled, stored, routed and pushed as a webhook's order would be.
    let push = eventually("the polled order pushed", WAIT, || async {
        supplier.received().first().cloned()
    })
    .await;
    assert_eq!(
        push.body["data"]["order"]["external_id"],
        "820982911946154508"
    );
    let orders = app.orders().await;
    assert_eq!(orders.len(), 1);
    let detail = app.order(orders[0]["id"].as_str().unwrap()).await;
    let raw = &detail["raw_requests"][0];
    assert_eq!(
        raw["method"], "POLL",
        "the order is filed under the poll's raw record"
    );
    let payload: Value = serde_json::from_str(raw["body"].as_str().unwrap()).unwrap();
    assert!(
        payload["exchanges"][0]["body"]
            .as_str()
            .unwrap()
            .contains("gid://shopify/Order/820982911946154508"),
        "{payload}"
    );
    let state = eventually("the poll's cursor saved", WAIT, || async {
        let s = app.get_json(&poll).await;
        s["cursor"].is_string().then_some(s)
    })
    .await;
    assert_eq!(state["consecutive_failures"], 0);

    // The late webhook of the same order, and the next poll: still one order, one push.
    let r = app
        .send_shopify(
            "orders/create",
            "wh-late",
            &shopify_sample(),
            SHOPIFY_SECRET,
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["orders"][0]["status"], "duplicate", "{body}");
    let polled_at = state["last_polled_at_ms"].clone();
    app.post_json(&poll, &json!({})).await;
    eventually("a second poll", WAIT, || async {
        let s = app.get_json(&poll).await;
        (s["last_polled_at_ms"] != polled_at
            && s["last_success_at_ms"].as_i64() >= s["last_polled_at_ms"].as_i64())
        .then_some(())
    })
    .await;
    assert_eq!(app.orders().await.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(supplier.received().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_that_fails_is_kept_backed_off_and_gets_through_once_fixed() {
    let app = TestApp::spawn_with(TestDb::new().await, |_| {}).await;
    let misbehaving = daifa_bundled_plugins::TEST_PLUGINS
        .iter()
        .find(|p| p.name == "misbehaving")
        .unwrap()
        .wasm
        .to_vec();
    let r = app
        .http
        .post(app.url("/api/v1/plugins"))
        .header("content-type", "application/wasm")
        .body(misbehaving)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = app
        .post_json(
            "/api/v1/connections",
            &json!({ "name": "flaky", "plugin": "misbehaving", "settings": { "poll": "panic" } }),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // A connection whose plugin does not poll cannot be asked to.
    let shopify = FakeShopify::start(SHOPIFY_TOKEN).await;
    let supplier = FakeSupplier::start(SUPPLIER_SECRET).await;
    app.set_up_connections(&shopify.base_url, &supplier.url)
        .await;
    let r = app
        .post_json(
            &format!("/api/v1/connections/{SUPPLIER_CONNECTION}/poll"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let message = r.text().await.unwrap();
    assert!(message.contains("does not poll"), "{message}");

    // Nothing is polled before the connection's first interval is up (a minute in tests):
    // asked now, the plugin traps; the failure is recorded with the call's raw record, and
    // retried later.
    let poll = "/api/v1/connections/flaky/poll";
    let before = app.get_json(poll).await;
    assert!(before["last_polled_at_ms"].is_null(), "{before}");
    let r = app.post_json(poll, &json!({})).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let failed = eventually("a failed poll", WAIT, || async {
        let s = app.get_json(poll).await;
        (s["consecutive_failures"].as_i64() >= Some(1)).then_some(s)
    })
    .await;
    assert!(
        failed["last_error"].as_str().unwrap().starts_with("trap"),
        "{failed}"
    );
    assert!(failed["cursor"].is_null());
    let raw = app.get_json("/api/v1/raw-requests?connection=flaky").await;
    let record = &raw["raw_requests"][0];
    assert_eq!(record["status"], "failed");
    assert_eq!(record["method"], "POLL");
    assert!(
        record["reason"].as_str().unwrap().contains("panic"),
        "{record}"
    );
    // Backed off: the second failure comes after a longer wait than the first (the interval
    // doubles, capped at polling.max_backoff = 2 s in tests).
    let twice = eventually("a second failed poll", WAIT, || async {
        let s = app.get_json(poll).await;
        (s["consecutive_failures"].as_i64() >= Some(2)).then_some(s)
    })
    .await;
    assert!(twice["next_poll_at_ms"].as_i64() > failed["next_poll_at_ms"].as_i64());

    // Fixed: the next poll gets through and moves the cursor.
    let r = app
        .http
        .patch(app.url("/api/v1/connections/flaky"))
        .json(&json!({ "settings": { "poll": "" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = app.post_json(poll, &json!({})).await;
    assert_eq!(r.status(), 202);
    let ok = eventually("a poll that gets through", WAIT, || async {
        let s = app.get_json(poll).await;
        (s["consecutive_failures"] == 0 && s["cursor"] == "1").then_some(s)
    })
    .await;
    assert!(ok["last_error"].is_null(), "{ok}");
    app.stop().await;
}
