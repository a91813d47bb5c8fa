//! After-sales end to end, through the fake Shopify Admin API, a fake supplier speaking Daifa's
//! protocol (cancellations and returns, revision 1.2) and the fake 17TRACK: a cancellation
//! before shipping (intercepted at the supplier, refunded on the storefront), a return with an
//! inspection, an exchange, a reship after a lost parcel, an in-transit return raised by a
//! carrier event; refunds bounded by what was paid; invalid transitions refused.

use crate::fakes::{FakeSeventeenTrack, FakeShopify, FakeSupplier, seventeentrack_track_info};
use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const TRACKING_KEY: &str = "17track-test-key";

struct World {
    app: TestApp,
    shopify: FakeShopify,
    supplier: FakeSupplier,
    seventeen: FakeSeventeenTrack,
}

async fn world() -> World {
    let shopify = FakeShopify::start(SHOPIFY_TOKEN).await;
    let supplier = FakeSupplier::start(SUPPLIER_SECRET).await;
    let seventeen = FakeSeventeenTrack::start(TRACKING_KEY).await;
    let app = TestApp::spawn_with(TestDb::new().await, |_| {}).await;
    app.set_up_connections(&shopify.base_url, &supplier.url)
        .await;
    // The offer's cost, for the return-to-supplier note's deduction.
    let r = app
        .post_json(
            "/api/v1/offers",
            &json!({ "channel": SHOP_CONNECTION, "storefront_sku": "IPOD2008PINK", "supplier": SUPPLIER_CONNECTION,
                     "supplier_sku": "SUP-IPOD-PINK", "unit_cost_minor": 12000, "shipping_cost_minor": 800, "currency": "USD" }),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = app
        .post_json(
            "/api/v1/connections",
            &json!({ "name": "tracking", "plugin": "seventeentrack", "settings": { "api_base_url": seventeen.base_url },
                     "secrets": { "api_key": TRACKING_KEY }, "allowed_hosts": [host_of(&seventeen.base_url)],
                     "allow_private_network": true }),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    World {
        app,
        shopify,
        supplier,
        seventeen,
    }
}

impl World {
    /// The published sample order (2 lines of 199.00 USD), pushed to the supplier; its
    /// supplier order's id.
    async fn order(&self, webhook_id: &str) -> (String, String) {
        self.order_with(webhook_id, |_| {}).await
    }

    /// The sample changed by `edit`, placed and pushed.
    async fn order_with(
        &self,
        webhook_id: &str,
        edit: impl FnOnce(&mut Value),
    ) -> (String, String) {
        let mut order: Value = serde_json::from_slice(&shopify_sample()).unwrap();
        order["id"] = json!(webhook_id.bytes().map(u64::from).sum::<u64>() + 5000);
        edit(&mut order);
        self.shopify.add_order_json(&order);
        let body = serde_json::to_vec(&order).unwrap();
        let r = self
            .app
            .send_shopify("orders/create", webhook_id, &body, SHOPIFY_SECRET)
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let answer: Value = r.json().await.unwrap();
        let order_id = answer["orders"][0]["order_id"]
            .as_str()
            .unwrap()
            .to_string();
        let push = eventually("the order pushed", WAIT, || async {
            self.supplier
                .received_of("order.created")
                .into_iter()
                .find(|p| {
                    p.body["data"]["order"]["external_id"].as_str()
                        == Some(order["id"].to_string().as_str())
                })
        })
        .await;
        (
            order_id,
            push.body["data"]["supplier_order_id"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    }

    async fn callback(&self, id: &str, message: Value) {
        let r = self
            .supplier
            .call_back(
                &self.app.url(&format!("/hooks/{SUPPLIER_CONNECTION}")),
                id,
                &message,
            )
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    /// The supplier ships the whole supplier order under `tracking`.
    async fn ship(&self, supplier_order_id: &str, tracking: &str) {
        self.callback(
            &format!("cb-ship-{tracking}"),
            json!({ "type": "supplier_order.shipped", "timestamp": "2026-12-01T12:00:00Z",
                    "data": { "supplier_order_id": supplier_order_id, "shipment": { "carrier": "China Post", "tracking_number": tracking,
                              "tracking_url": null, "shipped_at": "2026-12-01T11:30:00Z",
                              "lines": [ { "line_id": "866550311766439020", "quantity": 1 }, { "line_id": "141249953214522974", "quantity": 1 } ] } } }),
        )
        .await;
    }

    async fn open_case(&self, body: Value) -> Value {
        let r = self.app.post_json("/api/v1/cases", &body).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    async fn act(&self, case_id: &str, body: Value) -> reqwest::Response {
        self.app
            .http
            .post(self.app.url(&format!("/api/v1/cases/{case_id}/actions")))
            .header("x-daifa-operator", "ana@shop")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn case(&self, case_id: &str) -> Value {
        self.app.get_json(&format!("/api/v1/cases/{case_id}")).await
    }

    async fn case_in(&self, case_id: &str, state: &str) -> Value {
        eventually(&format!("case {case_id} {state}"), WAIT, || async {
            let c = self.case(case_id).await;
            (c["case"]["state"] == state).then_some(c)
        })
        .await
    }
}

fn actions(case: &Value) -> Vec<String> {
    case["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_before_shipping_is_intercepted_at_the_supplier_and_refunded() {
    let w = world().await;
    let (order_id, so) = w.order("wh-cancel").await;
    let opened = w
        .open_case(json!({ "order_id": order_id, "kind": "cancel", "reason": "changed_mind", "note": "ordered twice" }))
        .await;
    let case_id = opened["case"]["id"].as_str().unwrap().to_string();
    assert_eq!(opened["case"]["state"], "requested");
    // The whole order, its total of 388.00 USD, is what a cancellation refunds.
    assert_eq!(opened["case"]["refund_requested_minor"], 38800, "{opened}");
    assert_eq!(opened["allowed"], json!(["approve", "reject"]));
    // Not allowed yet: refused with what is.
    let r = w.act(&case_id, json!({ "action": "refund" })).await;
    assert_eq!(r.status(), 409);
    let message = r.text().await.unwrap();
    assert!(
        message.contains("a cancel case that is requested cannot refund; it can: approve, reject"),
        "{message}"
    );

    let r = w.act(&case_id, json!({ "action": "approve" })).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // The supplier is asked to cancel its order, and does.
    let cancel = eventually("the cancellation at the supplier", WAIT, || async {
        w.supplier
            .received_of("order.cancel_requested")
            .into_iter()
            .next()
    })
    .await;
    assert!(cancel.signature_valid);
    assert_eq!(cancel.body["data"]["supplier_order_id"], so);
    // Then refunded through Shopify, and closed.
    let case = w.case_in(&case_id, "closed").await;
    assert_eq!(case["case"]["refunded_minor"], 38800);
    assert_eq!(
        actions(&case),
        [
            "open",
            "approve",
            "intercept",
            "intercepted",
            "refund",
            "close"
        ]
    );
    let refunds = w.shopify.refunds();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    let detail = w.app.order(&order_id).await;
    assert_eq!(detail["order"]["status"], "cancelled");
    assert_eq!(detail["supplier_orders"][0]["status"], "cancelled");
    // The storefront, which still showed the order open, cancels it too, without refunding:
    // the case paid the refund.
    let external = detail["order"]["external_id"].as_str().unwrap().to_string();
    let cancelled = eventually("the storefront cancellation", WAIT, || async {
        w.shopify.cancellations().get(&external).cloned()
    })
    .await;
    assert_eq!(cancelled["reason"], "CUSTOMER");
    assert_eq!(cancelled["staffNote"], "ordered twice");
    assert_eq!(
        cancelled["refundMethod"]["originalPaymentMethodsRefund"], false,
        "{cancelled}"
    );

    // Everything paid is refunded: another refund is refused.
    let r = w
        .app
        .post_json(
            "/api/v1/cases",
            &json!({ "order_id": order_id, "kind": "refund_only", "refund_minor": 100 }),
        )
        .await;
    assert_eq!(r.status(), 409);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("refunds would exceed what was paid")
    );

    // Too late at another supplier order: the interception fails and the case closes.
    let (order_id, _) = w.order("wh-cancel-late").await;
    w.supplier.answer_cancellations("too_late");
    let case_id = w
        .open_case(json!({ "order_id": order_id, "kind": "cancel" }))
        .await["case"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    w.act(&case_id, json!({ "action": "approve" })).await;
    let case = w.case_in(&case_id, "closed").await;
    assert_eq!(
        actions(&case),
        ["open", "approve", "intercept", "intercept_failed", "close"]
    );
    assert_eq!(case["case"]["refunded_minor"], 0);
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_return_goes_back_to_the_supplier_is_inspected_and_refunded() {
    let w = world().await;
    let (order_id, so) = w.order("wh-return").await;
    w.ship(&so, "RR000000001CN").await;
    let opened = w
        .open_case(
            json!({ "order_id": order_id, "kind": "return_refund", "reason": "damaged",
                          "lines": [ { "external_line_id": "866550311766439020", "quantity": 1 } ],
                          "evidence": ["https://photos.example/crack.jpg"] }),
        )
        .await;
    let case_id = opened["case"]["id"].as_str().unwrap().to_string();
    // A quality problem: the shop pays the freight both ways (handbook 001).
    assert_eq!(
        opened["case"]["freight"],
        json!({ "back": "shop", "out": "shop" })
    );
    assert_eq!(opened["case"]["refund_requested_minor"], 19900);
    // A small defect: a partial refund is proposed before a return.
    assert_eq!(
        opened["proposal"]["propose"], "partial_compensation",
        "{opened}"
    );
    assert_eq!(opened["proposal"]["amount_minor"], 3980);

    w.act(&case_id, json!({ "action": "approve" })).await;
    // The supplier authorizes the return and says where to.
    let case = eventually("the return authorized", WAIT, || async {
        let c = w.case(&case_id).await;
        c["case"]["return_authorization"].is_string().then_some(c)
    })
    .await;
    assert_eq!(case["case"]["return_address"]["city"], "Yiwu");
    let request = &w.supplier.received_of("return.requested")[0];
    assert_eq!(request.body["data"]["case_id"], case_id);
    assert_eq!(request.body["data"]["reason"], "damaged");
    let r = w
        .act(
            &case_id,
            json!({ "action": "return_shipped", "tracking_number": "RT123" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    w.callback(
        "cb-received",
        json!({ "type": "return.received", "timestamp": "2026-12-02T09:00:00Z",
                "data": { "supplier_order_id": so, "case_id": case_id, "received_at": "2026-12-02T08:00:00Z",
                          "lines": [ { "line_id": "866550311766439020", "quantity": 1 } ] } }),
    )
    .await;
    w.callback(
        "cb-inspected",
        json!({ "type": "return.inspected", "timestamp": "2026-12-02T10:00:00Z",
                "data": { "supplier_order_id": so, "case_id": case_id, "resellable": false, "defect": "cracked screen",
                          "lines": [ { "line_id": "866550311766439020", "quantity": 1 } ] } }),
    )
    .await;
    let case = w.case_in(&case_id, "closed").await;
    assert_eq!(
        actions(&case),
        [
            "open",
            "approve",
            "return_authorized",
            "return_shipped",
            "receive",
            "inspect",
            "refund",
            "close"
        ]
    );
    assert_eq!(case["case"]["refunded_minor"], 19900);
    assert_eq!(case["case"]["defect"], "cracked screen");
    // Defective: back to the supplier on a note, its cost deducted.
    assert_eq!(case["return_notes"][0]["deduction_minor"], 12000, "{case}");
    assert_eq!(w.shopify.refunds().len(), 1);
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_ships_a_replacement_once_the_goods_are_back_and_inspected() {
    let w = world().await;
    let (order_id, so) = w.order("wh-exchange").await;
    w.ship(&so, "RR000000002CN").await;
    // An exchange is for quality problems only.
    let r = w
        .app
        .post_json(
            "/api/v1/cases",
            &json!({ "order_id": order_id, "kind": "exchange", "reason": "changed_mind" }),
        )
        .await;
    assert_eq!(r.status(), 422);
    let case_id = w
        .open_case(json!({ "order_id": order_id, "kind": "exchange", "reason": "quality",
                          "lines": [ { "external_line_id": "141249953214522974", "quantity": 1 } ] }))
        .await["case"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for action in ["approve", "receive"] {
        let r = w.act(&case_id, json!({ "action": action })).await;
        assert_eq!(r.status(), 200, "{action}: {}", r.text().await.unwrap());
    }
    let r = w
        .act(&case_id, json!({ "action": "inspect", "resellable": true }))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // The replacement is routed as a new supplier order that sends the first one again.
    let replacement = eventually("the replacement pushed", WAIT, || async {
        w.supplier
            .received_of("order.created")
            .into_iter()
            .find(|p| p.body["data"]["reship_of"] == so)
    })
    .await;
    let lines = replacement.body["data"]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["line_id"], "141249953214522974");
    let case = w.case_in(&case_id, "shipped").await;
    let new_so = case["case"]["replacement_supplier_order_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(replacement.body["data"]["supplier_order_id"], new_so);
    // The replacement leaves the supplier: the case is done.
    w.callback(
        "cb-replacement",
        json!({ "type": "supplier_order.shipped", "timestamp": "2026-12-03T12:00:00Z",
                "data": { "supplier_order_id": new_so, "shipment": { "carrier": "YunExpress", "tracking_number": "YT1",
                          "tracking_url": null, "shipped_at": "2026-12-03T11:30:00Z",
                          "lines": [ { "line_id": "141249953214522974", "quantity": 1 } ] } } }),
    )
    .await;
    w.case_in(&case_id, "closed").await;
    assert!(
        w.shopify.refunds().is_empty(),
        "an exchange refunds nothing"
    );
    w.app.stop().await;
}

/// The sample shipped with China Post and registered at the fake 17TRACK.
async fn shipped_and_tracked(w: &World, webhook_id: &str, number: &str) -> (String, String) {
    let (order_id, so) = w.order(webhook_id).await;
    w.ship(&so, number).await;
    eventually("the parcel registered", WAIT, || async {
        w.seventeen.registered().contains_key(number).then_some(())
    })
    .await;
    (order_id, so)
}

async fn push_tracking(
    w: &World,
    number: &str,
    status: &str,
    sub_status: &str,
    at: &str,
    what: &str,
) {
    let body = FakeSeventeenTrack::push_body(
        number,
        3011,
        seventeentrack_track_info(status, sub_status, &[(at, what, "CITY, US")]),
    );
    let r = w.seventeen.push(&w.app.url("/hooks/tracking"), body).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_parcel_opens_a_reship_case_which_routes_a_new_supplier_order() {
    let w = world().await;
    let (order_id, so) = shipped_and_tracked(&w, "wh-lost", "RR000000003CN").await;
    push_tracking(
        &w,
        "RR000000003CN",
        "Exception",
        "Exception_Lost",
        "2026-12-02T10:00:00Z",
        "Parcel lost",
    )
    .await;
    let cases = w
        .app
        .get_json(&format!("/api/v1/cases?order_id={order_id}"))
        .await;
    let case = &cases["cases"][0];
    assert_eq!(
        (
            case["kind"].as_str(),
            case["source"].as_str(),
            case["reason"].as_str()
        ),
        (Some("reship"), Some("carrier"), Some("lost")),
        "{cases}"
    );
    let case_id = case["id"].as_str().unwrap().to_string();
    // Reship or refund, by which loses less: the offer costs 128 USD a unit, the goods sold
    // for 199.
    let detail = w.case(&case_id).await;
    assert_eq!(detail["proposal"]["propose"], "reship", "{detail}");
    // The same carrier news again opens nothing new.
    push_tracking(
        &w,
        "RR000000003CN",
        "Exception",
        "Exception_Lost",
        "2026-12-02T10:00:00Z",
        "Parcel lost",
    )
    .await;
    assert_eq!(
        w.app
            .get_json(&format!("/api/v1/cases?order_id={order_id}"))
            .await["cases"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let r = w.act(&case_id, json!({ "action": "approve" })).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let reship = eventually("the reship pushed", WAIT, || async {
        w.supplier
            .received_of("order.created")
            .into_iter()
            .find(|p| p.body["data"]["reship_of"] == so)
    })
    .await;
    assert_eq!(reship.body["data"]["lines"].as_array().unwrap().len(), 2);
    let case = w.case_in(&case_id, "shipped").await;
    assert_eq!(actions(&case), ["open", "approve", "ship"]);
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parcel_returned_to_its_sender_opens_an_in_transit_return() {
    let w = world().await;
    let (order_id, _) = shipped_and_tracked(&w, "wh-rts", "RR000000004CN").await;
    push_tracking(
        &w,
        "RR000000004CN",
        "Exception",
        "Exception_Returning",
        "2026-12-02T10:00:00Z",
        "Returning to sender",
    )
    .await;
    let cases = w
        .app
        .get_json(&format!("/api/v1/cases?order_id={order_id}"))
        .await;
    let case = &cases["cases"][0];
    assert_eq!(case["kind"], "return_refund");
    assert_eq!(case["return_kind"], "in_transit_return");
    assert_eq!(
        case["state"], "return_in_transit",
        "the carrier brings it back unasked"
    );
    let case_id = case["id"].as_str().unwrap().to_string();
    // Back with the sender: received.
    push_tracking(
        &w,
        "RR000000004CN",
        "Exception",
        "Exception_Returned",
        "2026-12-03T10:00:00Z",
        "Returned to sender",
    )
    .await;
    let case = w.case_in(&case_id, "received").await;
    assert_eq!(actions(&case), ["open", "return_shipped", "receive"]);
    assert_eq!(case["proposal"]["propose"], "reship");
    // Refused at the door elsewhere: a refused parcel.
    let (order_id, _) = shipped_and_tracked(&w, "wh-refused", "RR000000005CN").await;
    push_tracking(
        &w,
        "RR000000005CN",
        "DeliveryFailure",
        "DeliveryFailure_Rejected",
        "2026-12-02T10:00:00Z",
        "Refused",
    )
    .await;
    let cases = w
        .app
        .get_json(&format!("/api/v1/cases?order_id={order_id}"))
        .await;
    assert_eq!(
        cases["cases"][0]["return_kind"], "refused_parcel",
        "{cases}"
    );

    // Goods back at the supplier that no case announced (no tracking event said so): the
    // supplier's report opens the in-transit return, already received.
    let (order_id, so) = w.order("wh-unannounced").await;
    w.ship(&so, "RR000000006CN").await;
    w.callback(
        "cb-unannounced",
        json!({ "type": "return.received", "timestamp": "2026-12-03T09:00:00Z",
                "data": { "supplier_order_id": so, "received_at": "2026-12-03T08:00:00Z",
                          "lines": [ { "line_id": "141249953214522974", "quantity": 1 } ] } }),
    )
    .await;
    let cases = w
        .app
        .get_json(&format!("/api/v1/cases?order_id={order_id}"))
        .await;
    let case = &cases["cases"][0];
    assert_eq!(
        (
            case["kind"].as_str(),
            case["return_kind"].as_str(),
            case["source"].as_str(),
            case["state"].as_str()
        ),
        (
            Some("return_refund"),
            Some("in_transit_return"),
            Some("supplier"),
            Some("received")
        ),
        "{cases}"
    );
    assert_eq!(
        case["lines"],
        json!([{ "external_line_id": "141249953214522974", "quantity": 1 }])
    );
    // A report for another supplier's order is refused, and opens nothing.
    let r = w
        .supplier
        .call_back(
            &w.app.url(&format!("/hooks/{SUPPLIER_CONNECTION}")),
            "cb-unknown-so",
            &json!({ "type": "return.received", "timestamp": "2026-12-03T09:00:00Z",
                     "data": { "supplier_order_id": "so_not_ours", "received_at": "2026-12-03T08:00:00Z",
                               "lines": [ { "line_id": "141249953214522974", "quantity": 1 } ] } }),
        )
        .await;
    assert_eq!(r.status(), 422, "{}", r.text().await.unwrap());
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunds_asked_at_once_never_exceed_what_was_paid() {
    let w = world().await;
    let (order_id, _) = w.order("wh-bounded").await;
    // 388.00 USD paid; ten refunds of 50.00 asked at the same moment (operators, webhooks,
    // replicas): seven fit, three are refused, whatever the interleaving.
    let mut asks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let http = w.app.http.clone();
        let url = w.app.url("/api/v1/cases");
        let body = json!({ "order_id": order_id, "kind": "refund_only", "refund_minor": 5000 });
        asks.spawn(async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        });
    }
    let mut opened = Vec::new();
    let mut refused = 0;
    while let Some(answer) = asks.join_next().await {
        match answer.unwrap() {
            (201, body) => opened.push(body["case"]["id"].as_str().unwrap().to_string()),
            (409, _) => refused += 1,
            (status, body) => panic!("{status}: {body}"),
        }
    }
    assert_eq!((opened.len(), refused), (7, 3));

    // Each approved twice at once: one approval moves it, the other is refused.
    let mut approvals = tokio::task::JoinSet::new();
    for case_id in opened.iter().chain(opened.iter()) {
        let http = w.app.http.clone();
        let url = w.app.url(&format!("/api/v1/cases/{case_id}/actions"));
        approvals.spawn(async move {
            http.post(url)
                .json(&json!({ "action": "approve" }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = approvals.join_next().await {
        statuses.push(status.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [[200; 7], [409; 7]].concat());
    let mut refunded = 0;
    for case_id in &opened {
        refunded += w.case_in(case_id, "closed").await["case"]["refunded_minor"]
            .as_i64()
            .unwrap();
    }
    assert_eq!(refunded, 35000);
    assert_eq!(w.shopify.refunds().len(), 7);
    // What is left (38.00) can still be given back, not a cent more.
    let r = w
        .app
        .post_json(
            "/api/v1/cases",
            &json!({ "order_id": order_id, "kind": "partial_compensation", "refund_minor": 3801 }),
        )
        .await;
    assert_eq!(r.status(), 409);
    w.open_case(
        json!({ "order_id": order_id, "kind": "partial_compensation", "refund_minor": 3800 }),
    )
    .await;
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_opens_advances_and_lists_cases_and_tasks() {
    let w = world().await;
    let (order_id, so) = w.order("wh-cli").await;
    // Shipped by UPS (express) on 2026-11-20: its 7-day follow-up is due, a task opens.
    w.callback(
        "cb-cli-ship",
        json!({ "type": "supplier_order.shipped", "timestamp": "2026-11-20T12:00:00Z",
                "data": { "supplier_order_id": so, "shipment": { "carrier": "UPS", "tracking_number": "1ZCLI0000000000001",
                          "tracking_url": null, "shipped_at": "2026-11-20T11:30:00Z",
                          "lines": [ { "line_id": "866550311766439020", "quantity": 1 }, { "line_id": "141249953214522974", "quantity": 1 } ] } } }),
    )
    .await;
    let daifa = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_daifa"))
            .args(args)
            .args(["--url", &w.app.base])
            .env("DAIFA_OPERATOR", "ana@shop")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    let (ok, opened, err) = daifa(&[
        "cases",
        "open",
        "--order",
        &order_id,
        "--kind",
        "return_refund",
        "--reason",
        "damaged",
        "--line",
        "866550311766439020:1",
        "--note",
        "screen cracked",
    ]);
    assert!(ok, "{err}");
    assert!(opened.contains("state      requested"), "{opened}");
    assert!(opened.contains("next       approve, reject"), "{opened}");
    assert!(opened.contains("refund     19900 USD asked"), "{opened}");
    let case_id = opened
        .lines()
        .find_map(|l| l.strip_prefix("case       "))
        .unwrap()
        .trim()
        .to_string();

    let (ok, _, err) = daifa(&["cases", "act", &case_id, "refund"]);
    assert!(!ok);
    assert!(
        err.contains("409") && err.contains("cannot refund; it can: approve, reject"),
        "{err}"
    );
    let (ok, approved, err) = daifa(&["cases", "act", &case_id, "approve"]);
    assert!(ok, "{err}");
    assert!(approved.contains("state      approved"), "{approved}");
    assert!(
        approved
            .lines()
            .any(|l| l.contains("approve") && l.ends_with("by ana@shop")),
        "{approved}"
    );
    let (ok, listed, _) = daifa(&["cases", "list", "--order", &order_id, "--open"]);
    assert!(ok);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&case_id) && l.contains("return_refund")),
        "{listed}"
    );
    let (ok, _, err) = daifa(&[
        "cases",
        "open",
        "--order",
        &order_id,
        "--kind",
        "refund_only",
        "--line",
        "nope:1",
    ]);
    assert!(!ok);
    assert!(err.contains("the order has no line `nope`"), "{err}");

    let task_id = eventually("the follow-up task", WAIT, || async {
        let t = w
            .app
            .get_json(&format!(
                "/api/v1/tasks?order_id={order_id}&kind=tracking_follow_up"
            ))
            .await;
        t["tasks"][0]["id"].as_str().map(String::from)
    })
    .await;
    let (ok, tasks, _) = daifa(&["tasks", "list", "--order", &order_id]);
    assert!(ok);
    assert!(
        tasks
            .lines()
            .any(|l| l.starts_with(&task_id) && l.contains("tracking_follow_up")),
        "{tasks}"
    );
    let (ok, _, err) = daifa(&["tasks", "done", &task_id]);
    assert!(ok, "{err}");
    let done = w
        .app
        .get_json(&format!("/api/v1/tasks?status=done&order_id={order_id}"))
        .await;
    assert_eq!(done["tasks"][0]["id"], task_id.as_str());
    assert_eq!(done["tasks"][0]["done_by"], "ana@shop");
    let (ok, _, err) = daifa(&["tasks", "done", &task_id]);
    assert!(!ok);
    assert!(err.contains(&format!("no open task `{task_id}`")), "{err}");
    w.app.stop().await;
}

/// Service clocks are jobs: with two gateways on one database (replicas), each clock that
/// comes due runs once, whichever worker of which gateway claims it, and opens one task.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_clock_runs_once_across_two_gateways() {
    let w = world().await;
    let second = TestApp::spawn_with(w.app.db.share(), |s| s.jobs.workers = 3).await;
    const ORDERS: usize = 6;
    let mut orders = Vec::new();
    for n in 0..ORDERS {
        let (order_id, so) = w.order(&format!("wh-clock-{n}")).await;
        // Shipped by UPS (express) on 2026-11-20: the 7-day follow-up is due at once.
        let hook = if n % 2 == 0 { &w.app } else { &second };
        let r = w
            .supplier
            .call_back(
                &hook.url(&format!("/hooks/{SUPPLIER_CONNECTION}")),
                &format!("cb-clock-{n}"),
                &json!({ "type": "supplier_order.shipped", "timestamp": "2026-11-20T12:00:00Z",
                         "data": { "supplier_order_id": so, "shipment": { "carrier": "UPS", "tracking_number": format!("1ZCLOCK{n:011}"),
                                   "tracking_url": null, "shipped_at": "2026-11-20T11:30:00Z",
                                   "lines": [ { "line_id": "866550311766439020", "quantity": 1 }, { "line_id": "141249953214522974", "quantity": 1 } ] } } }),
            )
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        orders.push(order_id);
    }
    let follow_ups = || async {
        let t = w
            .app
            .get_json("/api/v1/tasks?status=all&kind=tracking_follow_up")
            .await;
        t["tasks"].as_array().cloned().unwrap_or_default()
    };
    eventually("a follow-up task per order", WAIT, || async {
        (follow_ups().await.len() >= ORDERS).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tasks = follow_ups().await;
    let mut per_order: Vec<&str> = tasks
        .iter()
        .map(|t| t["order_id"].as_str().unwrap())
        .collect();
    per_order.sort_unstable();
    let mut expected: Vec<&str> = orders.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(per_order, expected, "one task per order: {tasks:?}");
    let jobs = w.app.get_json("/api/v1/jobs?status=succeeded").await;
    let clocks: Vec<&Value> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "clock.follow_up")
        .collect();
    assert_eq!(clocks.len(), ORDERS);
    for job in clocks {
        assert_eq!(
            job["attempt_log"].as_array().map(Vec::len),
            Some(1),
            "ran once: {job}"
        );
    }
    second.stop().await;
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repairs_are_walked_by_the_operator_the_paid_kind_quoted_first() {
    let w = world().await;
    let (order_id, so) = w.order("wh-repair").await;
    w.ship(&so, "RR000000009CN").await;
    let walk = |case_id: String, steps: &'static [&'static str]| {
        let w = &w;
        async move {
            for action in steps {
                let r = w.act(&case_id, json!({ "action": action })).await;
                assert_eq!(r.status(), 200, "{action}: {}", r.text().await.unwrap());
            }
        }
    };
    let warranty = w
        .open_case(json!({ "order_id": order_id, "kind": "warranty_repair", "reason": "quality",
                          "lines": [ { "external_line_id": "866550311766439020", "quantity": 1 } ] }))
        .await;
    assert_eq!(
        warranty["case"]["refund_requested_minor"],
        Value::Null,
        "a repair refunds nothing"
    );
    // Handbook 001: the customer sends it, the shop pays the way back.
    assert_eq!(
        warranty["case"]["freight"],
        json!({ "back": "customer", "out": "shop" })
    );
    let id = warranty["case"]["id"].as_str().unwrap().to_string();
    walk(
        id.clone(),
        &["approve", "receive", "start_repair", "ship", "close"],
    )
    .await;
    let case = w.case(&id).await;
    // The supplier's authorization lands whenever its job runs: left out of the comparison.
    let steps: Vec<String> = actions(&case)
        .into_iter()
        .filter(|a| a != "return_authorized")
        .collect();
    assert_eq!(
        steps,
        [
            "open",
            "approve",
            "receive",
            "start_repair",
            "ship",
            "close"
        ],
        "{case}"
    );
    // The supplier that shipped was told the goods come back for a repair.
    let told = eventually("the return request", WAIT, || async {
        w.supplier
            .received_of("return.requested")
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(told.body["data"]["kind"], "warranty_repair");

    let paid = w
        .open_case(
            json!({ "order_id": order_id, "kind": "paid_maintenance", "note": "dropped it" }),
        )
        .await;
    assert_eq!(paid["allowed"], json!(["quote", "reject"]));
    let id = paid["case"]["id"].as_str().unwrap().to_string();
    let r = w.act(&id, json!({ "action": "approve" })).await;
    assert_eq!(r.status(), 409, "quoted before it is approved");
    walk(
        id.clone(),
        &[
            "quote",
            "approve",
            "receive",
            "start_repair",
            "ship",
            "close",
        ],
    )
    .await;
    assert_eq!(w.case(&id).await["case"]["state"], "closed");

    // A refused request closes by itself.
    let refused = w
        .open_case(json!({ "order_id": order_id, "kind": "refund_only", "refund_minor": 500 }))
        .await;
    let id = refused["case"]["id"].as_str().unwrap().to_string();
    walk(id.clone(), &["reject"]).await;
    let case = w.case_in(&id, "closed").await;
    assert_eq!(actions(&case), ["open", "reject", "close"]);
    assert_eq!(case["case"]["refunded_minor"], 0);
    w.app.stop().await;
}

/// SplitMix64, for a random walk that is the same on every run.
pub(crate) struct Walk(pub(crate) u64);

impl Walk {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// A model-based walk through the API: random cases and random actions with random amounts
/// on one order (no job workers, so nothing moves but what the walk does). After every step:
/// an action the case did not allow was refused with 409, one it allowed was not refused for
/// its transition, and the refunds over all the order's cases never exceed what it paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_walk_of_cases_never_takes_a_forbidden_step_nor_refunds_more_than_was_paid() {
    const PAID: i64 = 38800;
    const KINDS: [&str; 8] = [
        "cancel",
        "refund_only",
        "partial_compensation",
        "return_refund",
        "exchange",
        "reship",
        "warranty_repair",
        "paid_maintenance",
    ];
    const ACTIONS: [&str; 13] = [
        "approve",
        "reject",
        "quote",
        "intercept",
        "intercepted",
        "intercept_failed",
        "return_shipped",
        "receive",
        "inspect",
        "start_repair",
        "ship",
        "refund",
        "close",
    ];
    let shopify = FakeShopify::start(SHOPIFY_TOKEN).await;
    let supplier = FakeSupplier::start(SUPPLIER_SECRET).await;
    let app = TestApp::spawn_with(TestDb::new().await, |s| s.jobs.workers = 0).await;
    app.set_up_connections(&shopify.base_url, &supplier.url)
        .await;
    let r = app
        .send_shopify(
            "orders/create",
            "wh-walk",
            &shopify_sample(),
            SHOPIFY_SECRET,
        )
        .await;
    assert_eq!(r.status(), 200);
    let order_id = r.json::<Value>().await.unwrap()["orders"][0]["order_id"]
        .as_str()
        .unwrap()
        .to_string();

    let mut walk = Walk(0x5eed_0000_0000_0006);
    let mut cases: Vec<String> = Vec::new();
    let (mut taken, mut refused) = (0, 0);
    for step in 0..400 {
        if cases.is_empty() || walk.below(5) == 0 {
            let kind = KINDS[walk.below(8) as usize];
            let mut body = json!({ "order_id": order_id, "kind": kind, "reason": "quality" });
            if walk.below(2) == 0 {
                body["refund_minor"] = json!(walk.below(20_000) as i64);
            }
            let r = app.post_json("/api/v1/cases", &body).await;
            match r.status().as_u16() {
                201 => cases.push(
                    r.json::<Value>().await.unwrap()["case"]["id"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                ),
                409 | 422 => {}
                other => panic!(
                    "step {step}: opening {body}: {other} {}",
                    r.text().await.unwrap()
                ),
            }
        } else {
            let case_id = cases[walk.below(cases.len() as u64) as usize].clone();
            let before = app.get_json(&format!("/api/v1/cases/{case_id}")).await;
            let allowed: Vec<&str> = before["allowed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            // Half the time a step the case allows, to get deep into the machines; else any.
            let action = if !allowed.is_empty() && walk.below(2) == 0 {
                allowed[walk.below(allowed.len() as u64) as usize]
            } else {
                ACTIONS[walk.below(13) as usize]
            };
            let mut body = json!({ "action": action, "resellable": walk.below(2) == 0, "defect": "scratched" });
            if action == "refund" && walk.below(2) == 0 {
                body["amount_minor"] = json!(walk.below(40_000) as i64);
            }
            let r = app
                .http
                .post(app.url(&format!("/api/v1/cases/{case_id}/actions")))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            if allowed.contains(&action) {
                // Allowed by the machine: taken, or refused for its money (409 naming it).
                assert!(
                    status == 200 || (status == 409 && text.contains("exceed what was paid")),
                    "step {step}: {action} on {}: {status} {text}",
                    before["case"]["state"]
                );
                if status == 200 {
                    taken += 1;
                }
            } else {
                assert_eq!(status, 409, "step {step}: {action} on {before}: {text}");
                assert!(text.contains("cannot"), "{text}");
                refused += 1;
            }
        }
        let all = app
            .get_json(&format!("/api/v1/cases?order_id={order_id}"))
            .await;
        let refunded: i64 = all["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["refunded_minor"].as_i64().unwrap())
            .sum();
        assert!(
            refunded <= PAID,
            "step {step}: {refunded} refunded of {PAID}"
        );
    }
    eprintln!(
        "random walk: {} cases opened, {taken} steps taken, {refused} refused",
        cases.len()
    );
    // The walk went somewhere: cases opened, steps taken and refused.
    assert!(cases.len() >= 10, "{} cases", cases.len());
    assert!(
        taken >= 50 && refused >= 100,
        "{taken} taken, {refused} refused"
    );
    app.stop().await;
}

/// A clock is a row in the job queue: one that comes due while no gateway works the queue
/// (stopped, restarting) runs when one does, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_due_while_the_gateway_was_down_runs_when_it_is_back() {
    let shopify = FakeShopify::start(SHOPIFY_TOKEN).await;
    let supplier = FakeSupplier::start(SUPPLIER_SECRET).await;
    let first = TestApp::spawn_with(TestDb::new().await, |s| s.jobs.workers = 0).await;
    first
        .set_up_connections(&shopify.base_url, &supplier.url)
        .await;
    let r = first
        .send_shopify(
            "orders/create",
            "wh-restart",
            &shopify_sample(),
            SHOPIFY_SECRET,
        )
        .await;
    assert_eq!(r.status(), 200);
    let order_id = r.json::<Value>().await.unwrap()["orders"][0]["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    let so = first.order(&order_id).await["supplier_orders"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Shipped by UPS on 2026-11-20: the 7-day follow-up is already due.
    let r = supplier
        .call_back(
            &first.url(&format!("/hooks/{SUPPLIER_CONNECTION}")),
            "cb-restart-ship",
            &json!({ "type": "supplier_order.shipped", "timestamp": "2026-11-20T12:00:00Z",
                     "data": { "supplier_order_id": so, "shipment": { "carrier": "UPS", "tracking_number": "1ZRESTART000000001",
                               "tracking_url": null, "shipped_at": "2026-11-20T11:30:00Z",
                               "lines": [ { "line_id": "866550311766439020", "quantity": 1 }, { "line_id": "141249953214522974", "quantity": 1 } ] } } }),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let queued = first.get_json("/api/v1/jobs?status=queued").await;
    assert!(
        queued["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["kind"] == "clock.follow_up"),
        "{queued}"
    );
    let tasks = first.get_json("/api/v1/tasks").await;
    assert_eq!(tasks["tasks"], json!([]), "nothing runs the clock yet");
    let db = first.stop_keeping_database().await;

    let back = TestApp::spawn_with(db, |_| {}).await;
    let task = eventually("the follow-up task", WAIT, || async {
        let t = back
            .get_json(&format!(
                "/api/v1/tasks?order_id={order_id}&kind=tracking_follow_up"
            ))
            .await;
        t["tasks"].as_array().and_then(|t| t.first().cloned())
    })
    .await;
    assert_eq!(task["status"], "open");
    back.stop().await;
}

/// A return asked on Shopify (`returns/request`), then refunded in Shopify's admin before the
/// goods are back (`refunds/create` naming the return): one case, the money recorded on it,
/// and nothing refunded again when the goods arrive and pass inspection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storefront_return_refunded_in_the_storefront_is_one_case_paid_once() {
    let w = world().await;
    let (order_id, so) = w.order("wh-shopify-return").await;
    w.ship(&so, "RR000000007CN").await;
    let external = w.app.order(&order_id).await["order"]["external_id"]
        .as_str()
        .unwrap()
        .to_string();
    let order_number: u64 = external.parse().unwrap();
    let request = json!({
        "id": 945000959, "admin_graphql_api_id": "gid://shopify/Return/945000959", "status": "requested",
        "order": { "id": order_number, "admin_graphql_api_id": format!("gid://shopify/Order/{order_number}") },
        "total_return_line_items": 1, "name": "#1001-R1",
        "return_line_items": [ { "id": 6200524949_u64, "admin_graphql_api_id": "gid://shopify/ReturnLineItem/6200524949",
            "fulfillment_line_item": { "id": 10736341352597_u64, "admin_graphql_api_id": "gid://shopify/FulfillmentLineItem/10736341352597",
                "line_item": { "id": 866550311766439020_u64, "admin_graphql_api_id": "gid://shopify/LineItem/866550311766439020" } },
            "quantity": 1, "return_reason": "defective", "return_reason_note": "the screen flickers", "customer_note": null } ]
    });
    let r = w
        .app
        .send_shopify(
            "returns/request",
            "wh-return-request",
            &serde_json::to_vec(&request).unwrap(),
            SHOPIFY_SECRET,
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let cases = w
        .app
        .get_json(&format!("/api/v1/cases?order_id={order_id}"))
        .await;
    let case = cases["cases"][0].clone();
    assert_eq!(
        (
            case["kind"].as_str(),
            case["source"].as_str(),
            case["reason"].as_str(),
            case["external_id"].as_str()
        ),
        (
            Some("return_refund"),
            Some("storefront"),
            Some("quality"),
            Some("945000959")
        ),
        "{cases}"
    );
    let case_id = case["id"].as_str().unwrap().to_string();
    w.act(&case_id, json!({ "action": "approve" })).await;

    let refund = json!({
        "id": 509562969, "order_id": order_number, "created_at": "2026-12-03T10:00:00-05:00", "note": "screen flickers",
        "processed_at": "2026-12-03T10:00:00-05:00", "restock": false,
        "return": { "id": 945000959, "admin_graphql_api_id": "gid://shopify/Return/945000959" },
        "refund_line_items": [ { "id": 104689539, "quantity": 1, "line_item_id": 866550311766439020_u64, "restock_type": "return", "subtotal": 199.0 } ],
        "transactions": [ { "id": 245135926, "order_id": order_number, "kind": "refund", "gateway": "bogus", "status": "success",
                            "amount": "199.00", "currency": "USD", "parent_id": 389404469 } ]
    });
    let r = w
        .app
        .send_shopify(
            "refunds/create",
            "wh-refund-create",
            &serde_json::to_vec(&refund).unwrap(),
            SHOPIFY_SECRET,
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let cases = w
        .app
        .get_json(&format!("/api/v1/cases?order_id={order_id}"))
        .await;
    assert_eq!(cases["cases"].as_array().unwrap().len(), 1, "{cases}");
    assert_eq!(cases["cases"][0]["refunded_minor"], 19900);

    // The goods come back and pass: the case closes without a refund through Shopify.
    for action in ["receive"] {
        let r = w.act(&case_id, json!({ "action": action })).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let r = w
        .act(&case_id, json!({ "action": "inspect", "resellable": true }))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let case = w.case_in(&case_id, "closed").await;
    assert_eq!(case["case"]["refunded_minor"], 19900);
    assert!(w.shopify.refunds().is_empty(), "{:?}", w.shopify.refunds());

    // A refund in another currency than the order's opens nothing, and says why.
    let mut other = refund.clone();
    other["id"] = json!(509562970);
    other["return"] = Value::Null;
    other["transactions"][0]["currency"] = json!("EUR");
    other["transactions"][0]["amount"] = json!("20.00");
    let r = w
        .app
        .send_shopify(
            "refunds/create",
            "wh-refund-eur",
            &serde_json::to_vec(&other).unwrap(),
            SHOPIFY_SECRET,
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let detail = w.app.order(&order_id).await;
    let refused: Vec<&Value> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "case.refused")
        .collect();
    assert_eq!(refused.len(), 1, "{detail}");
    assert!(
        refused[0]
            .to_string()
            .contains("2000 minor units of EUR, the order is in USD"),
        "{}",
        refused[0]
    );
    assert_eq!(
        w.app
            .get_json(&format!("/api/v1/cases?order_id={order_id}"))
            .await["cases"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    w.app.stop().await;
}

/// The windows are policy: the handbook's 7-day return window refuses a return 10 days after
/// delivery; a longer window for the product's category lets it through, for that product's
/// line only: the order's other line, of no category, keeps the shop's 7 days.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_windows_are_policy_per_product_category() {
    let w = world().await;
    // The second line is a case for the iPod, sold by the same supplier, of no category.
    let r = w
        .app
        .post_json(
            "/api/v1/offers",
            &json!({ "channel": SHOP_CONNECTION, "storefront_sku": "IPOD2008CASE", "supplier": SUPPLIER_CONNECTION,
                     "supplier_sku": "SUP-IPOD-CASE", "unit_cost_minor": 400, "currency": "USD" }),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let (order_id, so) = w
        .order_with("wh-window", |o| {
            o["line_items"][1]["sku"] = json!("IPOD2008CASE");
        })
        .await;
    w.ship(&so, "RR000000008CN").await;
    eventually("the parcel registered", WAIT, || async {
        w.seventeen
            .registered()
            .contains_key("RR000000008CN")
            .then_some(())
    })
    .await;
    let ten_days_ago = (time::OffsetDateTime::now_utc() - time::Duration::days(10))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    push_tracking(
        &w,
        "RR000000008CN",
        "Delivered",
        "Delivered_Other",
        &ten_days_ago,
        "Delivered",
    )
    .await;
    eventually("the order delivered", WAIT, || async {
        (w.app.order(&order_id).await["order"]["status"] == "delivered").then_some(())
    })
    .await;
    let policy = w.app.get_json("/api/v1/policies/aftersales").await;
    assert_eq!(policy["effective"]["return_window"], "7days", "{policy}");
    assert_eq!(policy["effective"]["warranty_window"], "365days");
    assert_eq!(policy["effective"]["no_tracking_after"], "40days");

    let ask = json!({ "order_id": order_id, "kind": "return_refund", "reason": "changed_mind",
                      "lines": [ { "external_line_id": "866550311766439020", "quantity": 1 } ] });
    let r = w.app.post_json("/api/v1/cases", &ask).await;
    assert_eq!(r.status(), 422);
    let message = r.text().await.unwrap();
    assert!(
        message.contains(
            "the return window of 7 days after delivery has passed: delivered 10 days ago"
        ),
        "{message}"
    );

    // Electronics may come back within 14 days at this shop.
    let r = w
        .app
        .post_json(
            "/api/v1/offers",
            &json!({ "channel": SHOP_CONNECTION, "storefront_sku": "IPOD2008PINK", "supplier": SUPPLIER_CONNECTION,
                     "supplier_sku": "SUP-IPOD-PINK-2", "unit_cost_minor": 12500, "currency": "USD", "category": "electronics" }),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = w
        .app
        .http
        .put(
            w.app
                .url("/api/v1/policies/aftersales?category=electronics"),
        )
        .json(&json!({ "return_window": "14days" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let scoped = w
        .app
        .get_json("/api/v1/policies/aftersales?category=electronics")
        .await;
    assert_eq!(scoped["effective"]["return_window"], "14days", "{scoped}");
    assert_eq!(
        scoped["effective"]["exchange_window"], "30days",
        "the rest stays"
    );
    let opened = w.open_case(ask).await;
    assert_eq!(opened["case"]["state"], "requested");
    // The iPod's case is no electronics: its line keeps the shop's 7 days, alone or with the
    // iPod (the order's policy, of its first categorized line, would have let it through).
    for lines in [
        json!([ { "external_line_id": "141249953214522974", "quantity": 1 } ]),
        json!([ { "external_line_id": "866550311766439020", "quantity": 1 },
                { "external_line_id": "141249953214522974", "quantity": 1 } ]),
    ] {
        let r = w
            .app
            .post_json(
                "/api/v1/cases",
                &json!({ "order_id": order_id, "kind": "return_refund", "reason": "changed_mind", "lines": lines }),
            )
            .await;
        assert_eq!(r.status(), 422);
        let message = r.text().await.unwrap();
        assert!(
            message.contains("the return window")
                && message.contains("of 7 days after delivery has passed"),
            "{message}"
        );
    }
    // A document that is not a policy is refused, and changes nothing.
    let r = w
        .app
        .http
        .put(
            w.app
                .url("/api/v1/policies/aftersales?category=electronics"),
        )
        .json(&json!({ "return_windw": "30days" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "{}", r.text().await.unwrap());
    w.app.stop().await;
}
