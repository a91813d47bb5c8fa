//! Nothing stored is left unprocessed: the sweeper processes again the webhooks a crash or a
//! failing database left `received`, and the operator reprocesses one by its id.

use crate::fakes::{FakeShopify, FakeSupplier, ReceivedPush};
use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
/// How long ago a stale request was stored: well past `ingest.stale_after` (a minute).
const LONG_AGO: Duration = Duration::from_secs(5 * 60);

struct World {
    app: TestApp,
    supplier: FakeSupplier,
    _shopify: FakeShopify,
}

/// The gateway with the test settings (the sweeper looks every 100 ms), the Shopify
/// connection, the supplier and an offer of the sample's SKU.
async fn world() -> World {
    let shopify = FakeShopify::start(SHOPIFY_TOKEN).await;
    let supplier = FakeSupplier::start(SUPPLIER_SECRET).await;
    let app = TestApp::spawn_with(TestDb::new().await, |_| {}).await;
    app.set_up_connections(&shopify.base_url, &supplier.url)
        .await;
    World {
        app,
        supplier,
        _shopify: shopify,
    }
}

/// The headers Shopify sends with a webhook, as `receive` stores them (lower-case names).
fn shopify_headers(topic: &str, webhook_id: &str, body: &[u8]) -> Vec<(String, String)> {
    [
        ("content-type", "application/json".to_string()),
        ("x-shopify-topic", topic.to_string()),
        ("x-shopify-webhook-id", webhook_id.to_string()),
        (
            "x-shopify-shop-domain",
            "test-shop.myshopify.com".to_string(),
        ),
        ("x-shopify-api-version", "2025-07".to_string()),
        ("x-shopify-hmac-sha256", shopify_hmac(SHOPIFY_SECRET, body)),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect()
}

/// A request stored `age` ago and never processed, written straight into the database: what a
/// gateway that stopped between storing and processing it leaves behind.
struct Unprocessed<'a> {
    connection: &'a str,
    origin: &'a str,
    method: &'a str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    age: Duration,
}

impl<'a> Unprocessed<'a> {
    fn shopify(topic: &str, webhook_id: &str, body: &[u8], age: Duration) -> Self {
        Self {
            connection: SHOP_CONNECTION,
            origin: "webhook",
            method: "POST",
            path: format!("/hooks/{SHOP_CONNECTION}"),
            headers: shopify_headers(topic, webhook_id, body),
            body: body.to_vec(),
            age,
        }
    }

    async fn store(&self, db: &TestDb) -> String {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let id = format!("raw_{}", uuid::Uuid::now_v7().simple());
        let received_at_ms = i64::try_from(
            (std::time::SystemTime::now() - self.age)
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        sqlx::query(
            "insert into raw_requests (id, connection_name, method, path, headers, body, received_at_ms, status, origin) \
             values ($1, $2, $3, $4, $5, $6, $7, 'received', $8)",
        )
        .bind(&id)
        .bind(self.connection)
        .bind(self.method)
        .bind(&self.path)
        .bind(serde_json::to_string(&self.headers).unwrap())
        .bind(self.body.clone())
        .bind(received_at_ms)
        .bind(self.origin)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
        id
    }
}

/// A stored request as the admin API shows it.
async fn raw(app: &TestApp, id: &str) -> Value {
    let list = app.get_json("/api/v1/raw-requests?limit=1000").await;
    list["raw_requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no raw request {id} in {list}"))
}

async fn wait_for_status(app: &TestApp, id: &str, status: &str) -> Value {
    eventually(&format!("raw request {id} {status}"), WAIT, || async {
        let r = raw(app, id).await;
        (r["status"] == status).then_some(r)
    })
    .await
}

/// Waits for `n` pushes, then a while longer to see that no other comes.
async fn exactly_pushes(supplier: &FakeSupplier, n: usize) -> Vec<ReceivedPush> {
    eventually(&format!("{n} supplier push(es)"), WAIT, || async {
        (supplier.received().len() >= n).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pushes = supplier.received();
    assert_eq!(pushes.len(), n, "pushes: {pushes:#?}");
    pushes
}

fn external_ids(pushes: &[ReceivedPush]) -> Vec<String> {
    let mut ids: Vec<String> = pushes
        .iter()
        .map(|p| {
            p.body["data"]["order"]["external_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    ids
}

async fn reprocess(app: &TestApp, id: &str) -> reqwest::Response {
    app.post_json(&format!("/api/v1/raw-requests/{id}/reprocess"), &json!({}))
        .await
}

async fn metrics(app: &TestApp) -> String {
    app.http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_a_crash_left_received_becomes_one_order_pushed_once() {
    let w = world().await;
    let body = shopify_sample();
    let stale = Unprocessed::shopify("orders/create", "wh-crash", &body, LONG_AGO)
        .store(&w.app.db)
        .await;
    // One stored a moment ago may still be on its way through `receive`: not stale yet.
    let mut other: Value = serde_json::from_slice(&body).unwrap();
    other["id"] = json!(2_000_001);
    let other = serde_json::to_vec(&other).unwrap();
    let fresh = Unprocessed::shopify("orders/create", "wh-in-flight", &other, Duration::ZERO)
        .store(&w.app.db)
        .await;

    let record = wait_for_status(&w.app, &stale, "accepted").await;
    assert_eq!(record["attempts"], 1, "{record}");
    assert_eq!(record["delivery_id"], "wh-crash");
    let pushes = exactly_pushes(&w.supplier, 1).await;
    assert_eq!(external_ids(&pushes), ["820982911946154508"]);
    let orders = w.app.orders().await;
    assert_eq!(orders.len(), 1, "{orders:#?}");
    let detail = w.app.order(orders[0]["id"].as_str().unwrap()).await;
    assert_eq!(detail["raw_requests"][0]["id"], stale.as_str());
    assert_eq!(detail["timeline"][0]["kind"], "order.received");

    let fresh = raw(&w.app, &fresh).await;
    assert_eq!(
        (&fresh["status"], &fresh["attempts"]),
        (&json!("received"), &json!(0)),
        "{fresh}"
    );
    let metrics = metrics(&w.app).await;
    for needle in [
        r#"daifa_raw_requests_reprocessed_total{by="sweeper",outcome="accepted"}"#,
        "daifa_raw_requests_stale ",
    ] {
        assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
    }
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_the_sender_also_sent_again_makes_one_order_whichever_comes_first() {
    let w = world().await;
    // The sender's retry first, then the sweeper finds the copy the crash left.
    let body = shopify_sample();
    let r = w
        .app
        .send_shopify("orders/create", "wh-twice", &body, SHOPIFY_SECRET)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "accepted");
    let left = Unprocessed::shopify("orders/create", "wh-twice", &body, LONG_AGO)
        .store(&w.app.db)
        .await;
    let record = wait_for_status(&w.app, &left, "duplicate").await;
    assert!(record["order_id"].is_null(), "{record}");

    // The sweeper first, then the sender's retry.
    let mut second: Value = serde_json::from_slice(&body).unwrap();
    second["id"] = json!(2_000_002);
    let second = serde_json::to_vec(&second).unwrap();
    let left = Unprocessed::shopify("orders/create", "wh-twice-2", &second, LONG_AGO)
        .store(&w.app.db)
        .await;
    wait_for_status(&w.app, &left, "accepted").await;
    let r = w
        .app
        .send_shopify("orders/create", "wh-twice-2", &second, SHOPIFY_SECRET)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "duplicate");

    let pushes = exactly_pushes(&w.supplier, 2).await;
    assert_eq!(
        external_ids(&pushes),
        ["2000002", "820982911946154508"],
        "each order pushed once"
    );
    assert_eq!(w.app.orders().await.len(), 2);
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_refused_for_a_wrong_secret_is_reprocessed_once_the_secret_is_fixed() {
    let w = world().await;
    let set_secret = |secret: &'static str| {
        w.app
            .http
            .patch(w.app.url(&format!("/api/v1/connections/{SHOP_CONNECTION}")))
            .json(&json!({ "secrets": { "webhook_secret": secret } }))
            .send()
    };
    // The operator pasted the wrong secret: Shopify's webhook is refused.
    assert_eq!(
        set_secret("shpss_pasted_wrong").await.unwrap().status(),
        200
    );
    let body = shopify_sample();
    let r = w
        .app
        .send_shopify("orders/create", "wh-secret", &body, SHOPIFY_SECRET)
        .await;
    assert_eq!(r.status(), 401);
    let id = r.json::<Value>().await.unwrap()["raw_request_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Reprocessed before the fix: refused again, and recorded so.
    let r = reprocess(&w.app, &id).await;
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(
        (&again["status"], &again["status_code"]),
        (&json!("rejected"), &json!(401)),
        "{again}"
    );
    assert!(w.app.orders().await.is_empty());

    assert_eq!(set_secret(SHOPIFY_SECRET).await.unwrap().status(), 200);
    let r = reprocess(&w.app, &id).await;
    assert_eq!(r.status(), 200);
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["raw_request_id"], id.as_str());
    assert_eq!(done["status"], "accepted", "{done}");
    assert_eq!(done["status_code"], 200);
    assert_eq!(done["answer"]["status"], "accepted");
    assert_eq!(done["answer"]["orders"][0]["status"], "routed", "{done}");
    let pushes = exactly_pushes(&w.supplier, 1).await;
    assert_eq!(external_ids(&pushes), ["820982911946154508"]);
    assert_eq!(raw(&w.app, &id).await["status"], "accepted");

    // What was applied is not applied again; an unknown id is not found.
    let r = reprocess(&w.app, &id).await;
    assert_eq!(r.status(), 409);
    let error = r.json::<Value>().await.unwrap()["error"].to_string();
    assert!(error.contains("accepted"), "{error}");
    assert_eq!(reprocess(&w.app, "raw_nothing").await.status(), 404);
    assert_eq!(w.app.orders().await.len(), 1);
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_keeps_failing_is_given_up_with_a_task_after_the_schedule() {
    let app = TestApp::spawn_with(TestDb::new().await, |s| {
        s.ingest.reprocess_schedule = vec![Duration::from_millis(150); 3];
    })
    .await;
    // A connection whose plugin traps on this body, every time.
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
            &json!({ "name": "flaky", "plugin": "misbehaving" }),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let id = Unprocessed {
        connection: "flaky",
        origin: "webhook",
        method: "POST",
        path: "/hooks/flaky".into(),
        headers: vec![("content-type".into(), "text/plain".into())],
        body: b"panic".to_vec(),
        age: LONG_AGO,
    }
    .store(&app.db)
    .await;

    // The first attempt when stale, then one after each of the schedule's three delays.
    let record = wait_for_status(&app, &id, "failed").await;
    assert_eq!(record["attempts"], 4, "{record}");
    let reason = record["reason"].as_str().unwrap();
    assert!(reason.starts_with("given up after 4 attempts"), "{reason}");
    assert!(reason.contains("panic"), "{reason}");
    let tasks = app.get_json("/api/v1/tasks?kind=raw_request_failed").await;
    let tasks = tasks["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    assert_eq!(tasks[0]["detail"]["raw_request_id"], id.as_str());
    assert_eq!(tasks[0]["detail"]["connection"], "flaky");
    // Given up: the sweeper leaves it alone.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(raw(&app, &id).await["attempts"], 4);

    // The operator may still try it: it fails again, and says so.
    let r = reprocess(&app, &id).await;
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(
        (&again["status"], &again["status_code"]),
        (&json!("failed"), &json!(500)),
        "{again}"
    );
    let tasks = app.get_json("/api/v1/tasks?kind=raw_request_failed").await;
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 1, "one task");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polls_record_left_received_is_failed_for_the_next_poll_to_fetch_again() {
    let w = world().await;
    let id = Unprocessed {
        connection: SHOP_CONNECTION,
        origin: "poll",
        method: "POLL",
        path: format!("/poll/{SHOP_CONNECTION}"),
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"input": {"cursor": null, "since": 0}, "exchanges": []}"#.to_vec(),
        age: LONG_AGO,
    }
    .store(&w.app.db)
    .await;
    let record = wait_for_status(&w.app, &id, "failed").await;
    assert!(
        record["reason"].as_str().unwrap().contains("next poll"),
        "{record}"
    );
    assert_eq!(record["attempts"], 0, "not processed again: {record}");
    let r = reprocess(&w.app, &id).await;
    assert_eq!(r.status(), 409);
    let tasks = w
        .app
        .get_json("/api/v1/tasks?kind=raw_request_failed")
        .await;
    assert_eq!(tasks["tasks"], json!([]));
    w.app.stop().await;
}

/// Two gateways on one database sweep side by side: each stale request is taken by one of
/// them, once, and each order pushed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_sweeping_one_database_take_each_request_once() {
    let w = world().await;
    let second = TestApp::spawn_with(w.app.db.share(), |_| {}).await;
    let sample: Value = serde_json::from_slice(&shopify_sample()).unwrap();
    const REQUESTS: u64 = 8;
    let mut ids = Vec::new();
    for n in 0..REQUESTS {
        let mut order = sample.clone();
        order["id"] = json!(3_000_000 + n);
        let body = serde_json::to_vec(&order).unwrap();
        let id = Unprocessed::shopify("orders/create", &format!("wh-swept-{n}"), &body, LONG_AGO)
            .store(&w.app.db)
            .await;
        ids.push(id);
    }
    for id in &ids {
        let record = wait_for_status(&w.app, id, "accepted").await;
        assert_eq!(record["attempts"], 1, "taken once: {record}");
    }
    let pushes = exactly_pushes(&w.supplier, REQUESTS as usize).await;
    let mut external = external_ids(&pushes);
    external.dedup();
    assert_eq!(external.len(), REQUESTS as usize);
    second.stop().await;
    w.app.stop().await;
}

/// A supplier's callback signs its time, and suppliers' signatures older than five minutes are
/// refused: processed again later, a callback is judged as of when it arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_processed_again_later_is_judged_as_of_its_arrival() {
    let w = world().await;
    let r = w
        .app
        .send_shopify(
            "orders/create",
            "wh-callback",
            &shopify_sample(),
            SHOPIFY_SECRET,
        )
        .await;
    assert_eq!(r.status(), 200);
    let pushes = exactly_pushes(&w.supplier, 1).await;
    let supplier_order_id = pushes[0].body["data"]["supplier_order_id"].clone();

    // Ten minutes ago the supplier accepted, signed then; the gateway stored it and stopped.
    let sent = std::time::SystemTime::now() - Duration::from_secs(10 * 60);
    let ts = i64::try_from(
        sent.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let body = json!({ "type": "supplier_order.accepted", "timestamp": "2026-11-23T10:00:00Z",
                       "data": { "supplier_order_id": supplier_order_id, "external_id": "SUP-LATE" } })
    .to_string();
    let signature = standardwebhooks::Webhook::new(SUPPLIER_SECRET)
        .unwrap()
        .sign("cb-late", ts, body.as_bytes())
        .unwrap();
    let id = Unprocessed {
        connection: SUPPLIER_CONNECTION,
        origin: "webhook",
        method: "POST",
        path: format!("/hooks/{SUPPLIER_CONNECTION}"),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("webhook-id".into(), "cb-late".into()),
            ("webhook-timestamp".into(), ts.to_string()),
            ("webhook-signature".into(), signature),
        ],
        body: body.into_bytes(),
        age: Duration::from_secs(10 * 60),
    }
    .store(&w.app.db)
    .await;

    let record = wait_for_status(&w.app, &id, "accepted").await;
    assert_eq!(record["status_code"], 200, "{record}");
    let order = w.app.orders().await[0]["id"].as_str().unwrap().to_string();
    let detail = w.app.order(&order).await;
    assert_eq!(
        detail["supplier_orders"][0]["status"], "accepted",
        "{detail}"
    );
    assert_eq!(detail["supplier_orders"][0]["external_id"], "SUP-LATE");
    w.app.stop().await;
}
