//! The routing engine end to end, through fake suppliers speaking Daifa's webhook protocol: a
//! split over two suppliers, fallback when a supplier rejects, does not acknowledge in time or
//! cannot be reached, stock-out holds and their resolutions, released holds, CSV import and
//! export, the dry run, and suppliers' catalogue changes raising notices.

use crate::fakes::{FakeShopify, FakeSupplier, ReceivedPush};
use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A gateway with the Shopify connection and supplier connections named `sup-a`, `sup-b`...,
/// each a fake supplier; no offers.
pub(crate) struct Suppliers {
    pub(crate) app: TestApp,
    pub(crate) shopify: FakeShopify,
    fakes: Vec<(String, FakeSupplier)>,
    /// The settings of a gateway that can crash, to start the next one with.
    crashable: Option<fn(&mut daifa::Settings)>,
}

impl Suppliers {
    pub(crate) async fn start(names: &[&str]) -> Self {
        Self::start_with(names, |_| {}).await
    }

    pub(crate) async fn start_with(
        names: &[&str],
        tweak: impl FnOnce(&mut daifa::Settings),
    ) -> Self {
        Self::set_up(names, TestApp::spawn_with(TestDb::new().await, tweak).await).await
    }

    /// The same with a gateway that can crash and start again ([`Suppliers::crash`]).
    pub(crate) async fn start_crashable(names: &[&str], tweak: fn(&mut daifa::Settings)) -> Self {
        let app = TestApp::spawn_crashable(TestDb::new().await, tweak).await;
        let mut w = Self::set_up(names, app).await;
        w.crashable = Some(tweak);
        w
    }

    /// Kills the gateway where it stands (requests, job attempts and transactions in flight are
    /// lost, as in a killed process) and starts a new one on the same database.
    pub(crate) async fn crash(&mut self) {
        let tweak = self.crashable.expect("started with start_crashable");
        let db = self.app.crash();
        self.app = TestApp::spawn_crashable(db, tweak).await;
    }

    async fn set_up(names: &[&str], app: TestApp) -> Self {
        let shopify = FakeShopify::start(SHOPIFY_TOKEN).await;
        let r = app
            .post_json(
                "/api/v1/connections",
                &json!({
                    "name": SHOP_CONNECTION, "plugin": "shopify",
                    "settings": { "shop_domain": "test-shop.myshopify.com", "admin_base_url": shopify.base_url, "api_version": "2025-07" },
                    "secrets": { "webhook_secret": SHOPIFY_SECRET, "access_token": SHOPIFY_TOKEN },
                    "allowed_hosts": [host_of(&shopify.base_url)], "allow_private_network": true,
                }),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let mut fakes = Vec::new();
        for name in names {
            let fake = FakeSupplier::start(SUPPLIER_SECRET).await;
            let r = app
                .post_json(
                    "/api/v1/connections",
                    &json!({ "name": name, "plugin": "webhook-supplier", "settings": { "url": fake.url },
                             "secrets": { "signing_secret": SUPPLIER_SECRET },
                             "allowed_hosts": [host_of(&fake.url)], "allow_private_network": true }),
                )
                .await;
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
            fakes.push((name.to_string(), fake));
        }
        Self {
            app,
            shopify,
            fakes,
            crashable: None,
        }
    }

    /// The order's job of a kind, once it has one.
    pub(crate) async fn job_of(&self, order_id: &str, kind: &str) -> Value {
        eventually(&format!("a {kind} job"), WAIT, || async {
            let detail = self.app.order(order_id).await;
            detail["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|j| j["kind"] == kind)
                .cloned()
        })
        .await
    }

    /// The order's tasks of a kind.
    pub(crate) async fn tasks(&self, order_id: &str, kind: &str) -> Vec<Value> {
        self.app
            .get_json(&format!("/api/v1/tasks?order_id={order_id}&kind={kind}"))
            .await["tasks"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub(crate) fn supplier(&self, name: &str) -> &FakeSupplier {
        &self.fakes.iter().find(|(n, _)| n == name).unwrap().1
    }

    /// Stores the global routing policy document; it must be taken (200).
    pub(crate) async fn routing_policy(&self, document: Value) {
        let r = self
            .app
            .http
            .put(self.app.url("/api/v1/policies/routing"))
            .json(&document)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    pub(crate) async fn offer(&self, sku: &str, supplier: &str, extra: Value) {
        let mut body = json!({ "channel": SHOP_CONNECTION, "storefront_sku": sku, "supplier": supplier,
                               "supplier_sku": format!("{supplier}-{sku}") });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self.app.post_json("/api/v1/offers", &body).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }

    /// Sends the published sample order with its two lines as `skus`.
    pub(crate) async fn order(
        &self,
        webhook_id: &str,
        skus: [&str; 2],
        edit: impl FnOnce(&mut Value),
    ) -> String {
        let mut order: Value = serde_json::from_slice(&shopify_sample()).unwrap();
        order["id"] = json!(webhook_id.bytes().map(u64::from).sum::<u64>() + 1000);
        order["line_items"][0]["sku"] = json!(skus[0]);
        order["line_items"][1]["sku"] = json!(skus[1]);
        edit(&mut order);
        // The storefront has the order: shipments are written back to it (a write-back that
        // failed for good would hold the order).
        self.shopify.add_order_json(&order);
        let body = serde_json::to_vec(&order).unwrap();
        let r = self
            .app
            .send_shopify("orders/create", webhook_id, &body, SHOPIFY_SECRET)
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let answer: Value = r.json().await.unwrap();
        answer["orders"][0]["order_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub(crate) async fn pushes(&self, supplier: &str, n: usize) -> Vec<ReceivedPush> {
        let fake = self.supplier(supplier);
        eventually(&format!("{n} push(es) to {supplier}"), WAIT, || async {
            let r = fake.received();
            (r.len() >= n).then_some(r)
        })
        .await
    }

    pub(crate) async fn call_back(
        &self,
        supplier: &str,
        id: &str,
        message: Value,
    ) -> reqwest::Response {
        self.supplier(supplier)
            .call_back(&self.app.url(&format!("/hooks/{supplier}")), id, &message)
            .await
    }
}

/// The line ids and supplier SKUs of a push.
pub(crate) fn pushed_lines(push: &ReceivedPush) -> Vec<(String, String)> {
    let mut lines: Vec<(String, String)> = push.body["data"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["line_id"].as_str().unwrap().to_string(),
                l["supplier_sku"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    lines.sort();
    lines
}

pub(crate) fn kinds(detail: &Value) -> Vec<String> {
    detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

pub(crate) const LINE_0: &str = "866550311766439020";
pub(crate) const LINE_1: &str = "141249953214522974";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_no_supplier_can_ship_alone_is_split_with_declared_values() {
    let w = Suppliers::start(&["sup-a", "sup-b"]).await;
    w.offer(
        "SKU-A",
        "sup-a",
        json!({ "unit_cost_minor": 4000, "currency": "USD", "weight_grams": 200 }),
    )
    .await;
    w.offer(
        "SKU-B",
        "sup-b",
        json!({ "unit_cost_minor": 3500, "currency": "USD", "weight_grams": 200 }),
    )
    .await;
    let order_id = w.order("wh-split", ["SKU-A", "SKU-B"], |_| {}).await;
    let a = w.pushes("sup-a", 1).await;
    let b = w.pushes("sup-b", 1).await;
    assert_eq!(
        pushed_lines(&a[0]),
        [(LINE_0.to_string(), "sup-a-SKU-A".to_string())]
    );
    assert_eq!(
        pushed_lines(&b[0]),
        [(LINE_1.to_string(), "sup-b-SKU-B".to_string())]
    );
    // The supplier is told what to declare.
    assert_eq!(
        a[0].body["data"]["declared_value"],
        json!({ "amount_minor": 3000, "currency": "USD" })
    );
    let detail = w.app.order(&order_id).await;
    let sos = detail["supplier_orders"].as_array().unwrap();
    assert_eq!(sos.len(), 2, "one supplier order per supplier");
    // A US parcel under 3 kg: 199.00 USD of goods declared at 30 USD.
    for so in sos {
        assert_eq!(
            so["declared_value"],
            json!({ "amount_minor": 3000, "currency": "USD" }),
            "{so}"
        );
        assert!(
            so["declared_reason"]
                .as_str()
                .unwrap()
                .contains("US allows 5.00 to 30.00 USD")
        );
    }
    let decisions = &detail["routing_decisions"];
    assert_eq!(decisions.as_array().unwrap().len(), 1);
    assert_eq!(decisions[0]["outcome"], "routed");
    assert_eq!(
        decisions[0]["decision"]["lines"][0]["offers"][0]["verdict"],
        "chosen"
    );

    // Each supplier ships its parcel; the order is shipped, each parcel tracked on its own.
    for (supplier, pushes, line, tracking) in
        [("sup-a", &a, LINE_0, "LA1"), ("sup-b", &b, LINE_1, "LB1")]
    {
        let so_id = pushes[0].body["data"]["supplier_order_id"].clone();
        let r = w
            .call_back(
                supplier,
                &format!("cb-{supplier}"),
                json!({ "type": "supplier_order.shipped", "timestamp": "2026-11-23T12:00:00Z",
                        "data": { "supplier_order_id": so_id, "shipment": { "carrier": "YunExpress", "tracking_number": tracking,
                                  "tracking_url": null, "shipped_at": "2026-11-23T11:30:00Z", "lines": [ { "line_id": line, "quantity": 1 } ] } } }),
            )
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let detail = w.app.order(&order_id).await;
    assert_eq!(detail["order"]["status"], "shipped");
    assert_eq!(detail["shipments"].as_array().unwrap().len(), 2);
    drop(w.shopify);
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplier_that_rejects_hands_the_order_to_the_next_offer_with_the_history_kept() {
    let w = Suppliers::start(&["sup-a", "sup-b"]).await;
    for sku in ["SKU-A", "SKU-B"] {
        w.offer(sku, "sup-a", json!({ "priority": 1, "stock": 10 }))
            .await;
        w.offer(sku, "sup-b", json!({ "priority": 2 })).await;
    }
    let order_id = w.order("wh-reject", ["SKU-A", "SKU-B"], |_| {}).await;
    // Both lines go to sup-a, which can ship them all.
    let a = w.pushes("sup-a", 1).await;
    assert_eq!(pushed_lines(&a[0]).len(), 2);
    let so_a = a[0].body["data"]["supplier_order_id"].clone();
    let r = w
        .call_back(
            "sup-a",
            "cb-reject",
            json!({ "type": "supplier_order.rejected", "timestamp": "2026-11-23T10:00:00Z",
                    "data": { "supplier_order_id": so_a, "reason": "Out of stock: both", "code": "out_of_stock" } }),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Handed to sup-b at once, both lines.
    let b = w.pushes("sup-b", 1).await;
    assert_eq!(
        pushed_lines(&b[0]),
        [
            (LINE_1.to_string(), "sup-b-SKU-B".to_string()),
            (LINE_0.to_string(), "sup-b-SKU-A".to_string())
        ]
    );
    let detail = w.app.order(&order_id).await;
    let statuses: Vec<&str> = detail["supplier_orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses[0], "rejected");
    assert_eq!(detail["supplier_orders"][1]["replaces_id"], so_a);
    assert!(kinds(&detail).contains(&"supplier_order.failed_over".to_string()));
    let triggers: Vec<&str> = detail["routing_decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers, ["route", "fallback"]);
    // The rejection said out of stock: sup-a's offers have none left, and the shop is told.
    let offers = w.app.get_json("/api/v1/offers?supplier=sup-a").await;
    for o in offers["offers"].as_array().unwrap() {
        assert_eq!(o["stock"], 0, "{o}");
    }
    let notices = w.app.get_json("/api/v1/notices").await;
    let notice_kinds: Vec<&str> = notices["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(notice_kinds, ["out_of_stock", "out_of_stock"]);
    // A late acknowledgement from sup-a changes nothing.
    let r = w
        .call_back(
            "sup-a",
            "cb-late",
            json!({ "type": "supplier_order.accepted", "timestamp": "2026-11-23T10:05:00Z", "data": { "supplier_order_id": so_a } }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let detail = w.app.order(&order_id).await;
    assert_eq!(detail["supplier_orders"][0]["status"], "rejected");
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplier_that_does_not_acknowledge_in_time_or_cannot_be_reached_loses_the_order() {
    let w = Suppliers::start(&["slow", "down", "spare"]).await;
    // The spare supplier acknowledges in its answer: its orders are not failed over in turn.
    w.supplier("spare").accept_at_once();
    crate::integrity::set_ack_deadline(&w, "1s").await;
    // Unacknowledged: `slow` answers 202 (submitted) and never calls back.
    w.offer("SKU-A", "slow", json!({ "priority": 1 })).await;
    w.offer("SKU-A", "spare", json!({ "priority": 9 })).await;
    w.offer("SKU-B", "slow", json!({ "priority": 1 })).await;
    w.offer("SKU-B", "spare", json!({ "priority": 9 })).await;
    let slow_order = w.order("wh-slow", ["SKU-A", "SKU-B"], |_| {}).await;
    w.pushes("slow", 1).await;
    let spare = w.pushes("spare", 1).await;
    assert_eq!(pushed_lines(&spare[0]).len(), 2);
    let detail = w.app.order(&slow_order).await;
    assert_eq!(detail["supplier_orders"][0]["status"], "timed_out");
    assert!(
        detail["supplier_orders"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("did not acknowledge")
    );

    // Unreachable: every push to `down` fails until the job is dead-lettered.
    w.supplier("down").always_fail(Some(503));
    w.offer("SKU-C", "down", json!({ "priority": 1 })).await;
    w.offer("SKU-C", "spare", json!({ "priority": 9 })).await;
    w.offer("SKU-D", "down", json!({ "priority": 1 })).await;
    w.offer("SKU-D", "spare", json!({ "priority": 9 })).await;
    let down_order = w.order("wh-down", ["SKU-C", "SKU-D"], |_| {}).await;
    let spare = w.pushes("spare", 2).await;
    assert_eq!(
        w.supplier("down").received_of("order.created").len(),
        4,
        "one attempt and three retries"
    );
    assert_eq!(
        pushed_lines(&spare[1]),
        [
            (LINE_1.to_string(), "spare-SKU-D".to_string()),
            (LINE_0.to_string(), "spare-SKU-C".to_string())
        ]
    );
    let detail = w.app.order(&down_order).await;
    assert_eq!(detail["supplier_orders"][0]["status"], "undeliverable");
    assert_eq!(detail["order"]["status"], "routed");
    // The dead push cannot be retried: `spare` ships its lines now.
    let dead = w.app.get_json("/api/v1/jobs?status=dead").await;
    let dead = dead["jobs"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let r = w
        .app
        .http
        .post(w.app.url(&format!(
            "/api/v1/jobs/{}/retry",
            dead[0]["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let message = r.text().await.unwrap();
    let spare_order = detail["supplier_orders"][1]["id"].as_str().unwrap();
    assert!(
        message.contains(&format!("whose lines went to `{spare_order}` since")),
        "{message}"
    );
    let after = w.app.get_json("/api/v1/jobs?status=dead").await;
    assert_eq!(after["jobs"].as_array().unwrap().len(), 1, "still dead");
    assert_eq!(
        w.supplier("down").received_of("order.created").len(),
        4,
        "nothing pushed again"
    );
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_out_is_held_with_its_contact_clock_and_resolved_by_the_customers_choice() {
    let w = Suppliers::start(&["sup-a", "sup-b"]).await;
    w.offer("SKU-A", "sup-a", json!({})).await;
    w.offer("SKU-B", "sup-a", json!({ "stock": 0 })).await;

    // An alternative product, with a discount: routed at once.
    let order_id = w.order("wh-alt", ["SKU-A", "SKU-B"], |_| {}).await;
    let holds = w
        .app
        .get_json(&format!("/api/v1/holds?order_id={order_id}"))
        .await;
    let hold = &holds["holds"][0];
    assert_eq!(hold["kind"], "stock_out", "{holds}");
    let due = hold["contact_due_at_ms"].as_i64().unwrap() - hold["opened_at_ms"].as_i64().unwrap();
    assert_eq!(due, 24 * 3600 * 1000, "the handbook's 24 hours");
    assert!(
        hold["reason"]
            .as_str()
            .unwrap()
            .contains("out of stock (0 for 1)")
    );
    // A stock-out is not released: the customer chooses.
    let r = w
        .app
        .post_json(
            &format!("/api/v1/holds/{}/release", hold["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 409);
    w.offer("SKU-B2", "sup-b", json!({})).await;
    let r = w
        .app
        .http
        .post(w.app.url(&format!("/api/v1/holds/{}/resolve", hold["id"].as_str().unwrap())))
        .header("x-daifa-operator", "mei@shop")
        .json(&json!({ "choice": "alternative", "line_id": LINE_1, "storefront_sku": "SKU-B2", "discount": { "amount_minor": 500, "currency": "USD" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(
        pushed_lines(&w.pushes("sup-b", 1).await[0]),
        [(LINE_1.to_string(), "sup-b-SKU-B2".to_string())]
    );
    assert_eq!(
        pushed_lines(&w.pushes("sup-a", 1).await[0]),
        [(LINE_0.to_string(), "sup-a-SKU-A".to_string())]
    );
    let detail = w.app.order(&order_id).await;
    let resolved = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "hold.resolved")
        .unwrap();
    assert_eq!(resolved["detail"]["by"], "mei@shop");
    assert_eq!(
        resolved["detail"]["resolution"]["discount"]["amount_minor"],
        500
    );

    // A later date: the line that can ship ships now, the other waits until then.
    let order_id = w.order("wh-later", ["SKU-A", "SKU-B"], |_| {}).await;
    let hold_id = w
        .app
        .get_json(&format!("/api/v1/holds?order_id={order_id}"))
        .await["holds"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 1500;
    let r = w
        .app
        .post_json(
            &format!("/api/v1/holds/{hold_id}/resolve"),
            &json!({ "choice": "later", "until_ms": until }),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let a = w.pushes("sup-a", 2).await;
    assert_eq!(
        pushed_lines(&a[1]),
        [(LINE_0.to_string(), "sup-a-SKU-A".to_string())]
    );
    let detail = w.app.order(&order_id).await;
    assert!(kinds(&detail).contains(&"order.partially_routed".to_string()));
    // Stock comes back before the date: the waiting line ships then.
    w.offer("SKU-B", "sup-a", json!({ "stock": 5 })).await;
    let a = w.pushes("sup-a", 3).await;
    assert_eq!(
        pushed_lines(&a[2]),
        [(LINE_1.to_string(), "sup-a-SKU-B".to_string())]
    );
    let holds = eventually("the stock-out resolved", WAIT, || async {
        let h = w
            .app
            .get_json(&format!("/api/v1/holds?order_id={order_id}&status=all"))
            .await;
        (h["holds"][0]["status"] == "resolved").then_some(h)
    })
    .await;
    assert_eq!(holds["holds"][0]["resolved_by"], "api");

    // Cancellation.
    w.offer("SKU-B", "sup-a", json!({ "stock": 0 })).await;
    let order_id = w.order("wh-cancel", ["SKU-A", "SKU-B"], |_| {}).await;
    let hold_id = w
        .app
        .get_json(&format!("/api/v1/holds?order_id={order_id}"))
        .await["holds"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = w
        .app
        .post_json(
            &format!("/api/v1/holds/{hold_id}/resolve"),
            &json!({ "choice": "cancel", "reason": "customer declined" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let detail = w.app.order(&order_id).await;
    assert_eq!(detail["order"]["status"], "cancelled");
    assert_eq!(detail["supplier_orders"], json!([]));
    // Resolving it again is a conflict; an unknown choice is refused with the reason.
    let r = w
        .app
        .post_json(
            &format!("/api/v1/holds/{hold_id}/resolve"),
            &json!({ "choice": "cancel" }),
        )
        .await;
    assert_eq!(r.status(), 409);
    let r = w
        .app
        .post_json(
            &format!("/api/v1/holds/{hold_id}/resolve"),
            &json!({ "choice": "wait" }),
        )
        .await;
    assert_eq!(r.status(), 422);
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_hold_orders_until_the_operator_releases_them_audited() {
    let w = Suppliers::start(&["sup-a"]).await;
    w.offer("SKU-A", "sup-a", json!({})).await;
    w.offer("SKU-B", "sup-a", json!({})).await;
    w.routing_policy(json!({ "hold_above": { "amount": 100, "currency": "USD" } }))
        .await;
    let policy = w.app.get_json("/api/v1/policies/routing").await;
    assert_eq!(policy["effective"]["hold_above"]["amount"], 100.0);
    assert_eq!(
        policy["effective"]["customs"]["US"]["max"], 50.0,
        "defaults stay"
    );
    // A bad document is refused and changes nothing.
    let r = w
        .app
        .http
        .put(w.app.url("/api/v1/policies/routing"))
        .json(&json!({ "strategy": "cheapest" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("unknown variant `cheapest`")
    );

    // 398.00 USD is above 100: held for value, nothing pushed.
    let order_id = w.order("wh-value", ["SKU-A", "SKU-B"], |_| {}).await;
    let detail = w.app.order(&order_id).await;
    assert_eq!(detail["order"]["status"], "on_hold");
    let hold = w.app.get_json("/api/v1/holds").await["holds"][0].clone();
    assert_eq!(hold["kind"], "value");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.supplier("sup-a").received().is_empty());

    // Released by an operator: routed and pushed; the release is on the timeline.
    let r = w
        .app
        .http
        .post(w.app.url(&format!(
            "/api/v1/holds/{}/release",
            hold["id"].as_str().unwrap()
        )))
        .header("x-daifa-operator", "li@shop")
        .json(&json!({ "note": "called the buyer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    w.pushes("sup-a", 1).await;
    let detail = w.app.order(&order_id).await;
    let released = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "hold.released")
        .unwrap();
    assert_eq!(released["detail"]["by"], "li@shop");
    assert_eq!(released["detail"]["note"], "called the buyer");
    let triggers: Vec<&str> = detail["routing_decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers, ["route", "release"]);

    // Cancelling an order that is not on hold but not shipped either.
    let r = w
        .app
        .post_json(
            &format!("/api/v1/orders/{order_id}/cancel"),
            &json!({ "reason": "fraud" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = w
        .app
        .post_json(&format!("/api/v1/orders/{order_id}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status(), 409, "already cancelled");
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_import_and_export_as_csv_all_rows_or_none_and_a_dry_run_acts_on_nothing() {
    let w = Suppliers::start(&["sup-a", "sup-b"]).await;
    let post_csv = |body: &'static str| {
        w.app
            .http
            .post(w.app.url("/api/v1/offers.csv"))
            .header("content-type", "text/csv")
            .body(body)
            .send()
    };
    // One bad row refuses the file: each problem with its line, nothing imported.
    let r = post_csv(
        "channel,storefront_sku,supplier,supplier_sku,unit_cost,currency,stock,priority,ships_to\n\
         shop,SKU-A,sup-a,A-1,4.50,USD,10,1,US\n\
         shop,SKU-A,sup-c,C-1,4.00,USD,,2,\n\
         shop,SKU-B,sup-b,B-1,abc,USD,,,US\n",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["rows"][0]["line"], 3, "{body}");
    assert!(
        body["rows"][0]["errors"][0]
            .as_str()
            .unwrap()
            .contains("no connection named `sup-c`")
    );
    assert_eq!(body["rows"][1]["line"], 4);
    assert!(
        body["rows"][1]["errors"][0]
            .as_str()
            .unwrap()
            .contains("unit_cost: `abc` is not an amount")
    );
    assert_eq!(w.app.get_json("/api/v1/offers").await["offers"], json!([]));

    let r = post_csv(
        "channel,storefront_sku,supplier,supplier_sku,unit_cost,currency,stock,priority,ships_to,category,weight_grams\n\
         shop,SKU-A,sup-a,A-1,4.50,USD,10,1,US DE,,200\n\
         shop,SKU-A,sup-b,B-1,4.00,USD,,2,,,\n\
         shop,SKU-B,sup-b,B-2,12,CNY,3,1,,wood,800\n",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let exported = w
        .app
        .http
        .get(w.app.url("/api/v1/offers.csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows: Vec<&str> = exported.lines().collect();
    assert_eq!(rows.len(), 4, "{exported}");
    assert!(
        rows[1].starts_with("shop,SKU-A,sup-a,A-1,4.50,,USD,10,,US DE,,,1,true,false,,,200,off_"),
        "{exported}"
    );
    assert!(rows[3].contains(",wood,,800,"), "{exported}");
    // Importing the export again changes nothing.
    let again = exported.clone();
    let r = w
        .app
        .http
        .post(w.app.url("/api/v1/offers.csv"))
        .body(again)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        w.app.get_json("/api/v1/offers").await["offers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // A dry run of an order given in canonical form: the decision, nothing stored or pushed.
    let mut order: Value = serde_json::from_slice(&shopify_sample()).unwrap();
    order["line_items"][0]["sku"] = json!("SKU-A");
    order["line_items"][1]["sku"] = json!("SKU-B");
    let canonical = {
        let r = w
            .app
            .send_shopify(
                "orders/create",
                "wh-dry",
                &serde_json::to_vec(&order).unwrap(),
                SHOPIFY_SECRET,
            )
            .await;
        let answer: Value = r.json().await.unwrap();
        let id = answer["orders"][0]["order_id"]
            .as_str()
            .unwrap()
            .to_string();
        w.app.order(&id).await["order"]["canonical"].clone()
    };
    let before = w.supplier("sup-b").received().len();
    let r = w
        .app
        .post_json(
            "/api/v1/routing/dry-run",
            &json!({ "channel": SHOP_CONNECTION, "order": canonical }),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let decision: Value = r.json().await.unwrap();
    // sup-b ships both SKUs: the order stays on it.
    assert_eq!(decision["outcome"]["outcome"], "route", "{decision}");
    assert_eq!(decision["outcome"]["orders"].as_array().unwrap().len(), 1);
    assert_eq!(decision["outcome"]["orders"][0]["supplier"], "sup-b");
    assert_eq!(
        decision["outcome"]["orders"][0]["avoid_carriers"],
        json!(["DHL"]),
        "wood avoids DHL"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.app.orders().await.len(), 1, "the dry run stored no order");
    assert!(w.supplier("sup-b").received().len() <= before + 1);
    let r = w
        .app
        .post_json(
            "/api/v1/routing/dry-run",
            &json!({ "channel": SHOP_CONNECTION }),
        )
        .await;
    assert_eq!(r.status(), 422);

    // The CLI: export to a file, a refused import names each bad row's line.
    let dir = std::env::temp_dir().join(format!("daifa-offers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("offers.csv");
    let daifa = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_daifa"))
            .args(args)
            .args(["--url", &w.app.base])
            .output()
            .unwrap()
    };
    let out = daifa(&["offers", "export", "--output", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), exported);
    std::fs::write(
        &file,
        "channel,storefront_sku,supplier,supplier_sku,stock\nshop,SKU-Z,sup-a,Z-1,-3\n",
    )
    .unwrap();
    let out = daifa(&["offers", "import", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("offers.csv:2: stock must not be negative"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppliers_catalogue_changes_update_its_offers_and_notify_the_shop() {
    let w = Suppliers::start(&["sup-a"]).await;
    w.offer(
        "SKU-A",
        "sup-a",
        json!({ "unit_cost_minor": 1000, "currency": "USD", "stock": 50, "lead_time_days": 3 }),
    )
    .await;
    w.offer(
        "SKU-B",
        "sup-a",
        json!({ "unit_cost_minor": 2000, "currency": "USD", "stock": 50 }),
    )
    .await;
    let updates = [
        // +25 %: above the 10 % threshold.
        json!({ "supplier_sku": "sup-a-SKU-A", "unit_cost": { "amount_minor": 1250, "currency": "USD" }, "lead_time_days": 5 }),
        json!({ "supplier_sku": "sup-a-SKU-B", "stock": 0 }),
        json!({ "supplier_sku": "sup-a-SKU-B", "discontinued": true, "note": "replaced by model B2" }),
    ];
    for (i, data) in updates.iter().enumerate() {
        let r = w
            .call_back(
                "sup-a",
                &format!("cb-product-{i}"),
                json!({ "type": "product.updated", "timestamp": "2026-11-23T10:00:00Z", "data": data }),
            )
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let offers = w.app.get_json("/api/v1/offers?supplier=sup-a").await;
    let a = &offers["offers"][0];
    assert_eq!(
        (
            a["unit_cost_minor"].as_i64(),
            a["lead_time_days"].as_i64(),
            a["stock"].as_i64()
        ),
        (Some(1250), Some(5), Some(50))
    );
    let b = &offers["offers"][1];
    assert_eq!(
        (b["stock"].as_i64(), b["discontinued"].as_bool()),
        (Some(0), Some(true))
    );
    let notices = w.app.get_json("/api/v1/notices").await;
    let mut kinds: Vec<&str> = notices["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["discontinued", "out_of_stock", "price_up"]);
    let price = notices["notices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "price_up")
        .unwrap();
    assert_eq!(price["detail"]["percent"], 25.0);
    assert_eq!(price["detail"]["storefront_sku"], "SKU-A");
    // Acknowledged notices leave the list.
    let r = w
        .app
        .post_json(
            &format!(
                "/api/v1/notices/{}/acknowledge",
                price["id"].as_str().unwrap()
            ),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        w.app.get_json("/api/v1/notices").await["notices"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // An order for the discontinued SKU is held as a stock-out.
    let order_id = w.order("wh-disc", ["SKU-A", "SKU-B"], |_| {}).await;
    let detail = w.app.order(&order_id).await;
    assert_eq!(detail["order"]["status"], "on_hold");
    assert!(
        detail["order"]["hold_reason"]
            .as_str()
            .unwrap()
            .contains("discontinued by the supplier")
    );
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_cap_set_a_moment_ago_leaves_the_next_orders_to_the_next_offer() {
    let w = Suppliers::start(&["sup-a", "sup-b"]).await;
    for sku in ["SKU-A", "SKU-B"] {
        w.offer(sku, "sup-a", json!({ "priority": 1 })).await;
        w.offer(sku, "sup-b", json!({ "priority": 2 })).await;
    }
    // The first order is routed under the policy without a cap (which the gateway now keeps
    // in memory); the cap set after it applies to the very next order.
    w.order("wh-cap-0", ["SKU-A", "SKU-B"], |_| {}).await;
    w.routing_policy(json!({ "daily_caps": { "sup-a": 2 } }))
        .await;
    for n in 1..3 {
        w.order(&format!("wh-cap-{n}"), ["SKU-A", "SKU-B"], |_| {})
            .await;
    }
    // Two orders (one supplier order each) fill sup-a's day; the third goes to sup-b.
    assert_eq!(w.pushes("sup-a", 2).await.len(), 2);
    assert_eq!(w.pushes("sup-b", 1).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.supplier("sup-a").received().len(), 2);
    w.app.stop().await;
}

/// The race behind a daily cap that was once ignored in CI: a push's worker loads its order's
/// context in a snapshot taken before a policy change, and reads the policy (not cached yet)
/// after the change cleared the cache. What it read is the old policy, right for its snapshot,
/// but kept in the cache it would route the next orders under the old policy for `ttl`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_read_in_a_snapshot_older_than_a_change_is_not_kept() {
    use daifa::policy::{PolicyCache, RoutingPolicy, Scope};
    let test_db = TestDb::new().await;
    let db = daifa::db::Db::connect(&test_db.url).await.unwrap();
    db.migrate().await.unwrap();
    let cache = PolicyCache::new(Duration::from_secs(60));
    let scope = Scope::default();

    let policies = cache.reader();
    let mut snapshot = db.snapshot().await.unwrap();
    // The snapshot begins at its first read.
    daifa::store::policies::get(&mut snapshot, "routing", "global")
        .await
        .unwrap();
    // The change, committed and the cache cleared, as `PUT /policies/routing` does.
    let mut conn = db.pool.acquire().await.unwrap();
    daifa::store::policies::put(
        &mut conn,
        "routing",
        "global",
        &json!({ "daily_caps": { "sup-a": 2 } }),
    )
    .await
    .unwrap();
    cache.clear();
    let old: RoutingPolicy = policies.in_scope(&mut snapshot, &scope).await.unwrap();
    assert!(
        old.daily_caps.is_empty(),
        "the snapshot is older than the change"
    );
    snapshot.rollback().await.unwrap();

    let now: RoutingPolicy = cache.reader().in_scope(&mut conn, &scope).await.unwrap();
    assert_eq!(now.daily_caps.get("sup-a"), Some(&2));
    drop(conn);
    db.pool.close().await;
}

/// The policy of the order's channel follows its pushes: a supplier order pushed for a shop
/// whose routing policy gives suppliers 2 hours to acknowledge (the handbook's default is a
/// day) gets a 2-hour deadline. The push reads the channel's name from the connection cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_follows_the_acknowledgement_deadline_of_its_orders_channel() {
    let w = Suppliers::start(&["sup-a"]).await;
    w.offer("SKU-A", "sup-a", json!({})).await;
    w.offer("SKU-B", "sup-a", json!({})).await;
    let r = w
        .app
        .http
        .put(w.app.url(&format!(
            "/api/v1/policies/routing?channel={SHOP_CONNECTION}"
        )))
        .json(&json!({ "ack_deadline": "2h" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let order_id = w.order("wh-ack-2h", ["SKU-A", "SKU-B"], |_| {}).await;
    w.pushes("sup-a", 1).await;
    let job = w.job_of(&order_id, "supplier.ack_deadline").await;
    let waits = job["run_at_ms"].as_i64().unwrap() - job["created_at_ms"].as_i64().unwrap();
    assert!(
        (2 * 3600 * 1000 - 60_000..=2 * 3600 * 1000 + 60_000).contains(&waits),
        "the channel's 2 hours, not the default day: {waits} ms"
    );
    w.app.stop().await;
}
