//! Carriers: a shipment registered with a tracking service (the bundled 17TRACK plugin against a
//! fake of 17TRACK's API), followed through its pushes and through polling until delivered;
//! exceptions on the timeline.

use crate::fakes::{FakeSeventeenTrack, FakeShopify, FakeSupplier, seventeentrack_track_info};
use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const TRACKING_CONNECTION: &str = "tracking";
const TRACKING_KEY: &str = "17track-test-key";
const NUMBER: &str = "RR123456789CN";

struct TrackedWorld {
    app: TestApp,
    supplier: FakeSupplier,
    seventeen: FakeSeventeenTrack,
    order_id: String,
}

/// The sample order shipped by the supplier with China Post, its shipment registered with the
/// tracking service.
async fn shipped_and_registered() -> TrackedWorld {
    let shopify = FakeShopify::start(SHOPIFY_TOKEN).await;
    let supplier = FakeSupplier::start(SUPPLIER_SECRET).await;
    let seventeen = FakeSeventeenTrack::start(TRACKING_KEY).await;
    let app = TestApp::spawn_with(TestDb::new().await, |_| {}).await;
    app.set_up_connections(&shopify.base_url, &supplier.url)
        .await;
    let r = app
        .post_json(
            "/api/v1/connections",
            &json!({ "name": TRACKING_CONNECTION, "plugin": "seventeentrack",
                     "settings": { "api_base_url": seventeen.base_url },
                     "secrets": { "api_key": TRACKING_KEY },
                     "allowed_hosts": [host_of(&seventeen.base_url)], "allow_private_network": true }),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let check: Value = app
        .post_json(
            &format!("/api/v1/connections/{TRACKING_CONNECTION}/check"),
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(check["ok"], true, "{check}");

    let body = shopify_sample();
    shopify.add_order_json(&serde_json::from_slice(&body).unwrap());
    let r = app
        .send_shopify("orders/create", "wh-track", &body, SHOPIFY_SECRET)
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let push = eventually("the supplier push", WAIT, || async {
        supplier.received().first().cloned()
    })
    .await;
    let data = &push.body["data"];
    let lines: Vec<Value> = data["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| json!({ "line_id": l["line_id"], "quantity": l["quantity"] }))
        .collect();
    let shipped = json!({ "type": "supplier_order.shipped", "timestamp": "2026-11-23T12:00:00Z",
        "data": { "supplier_order_id": data["supplier_order_id"], "external_id": "SUP-1",
                  "shipment": { "carrier": "China Post", "tracking_number": NUMBER, "tracking_url": null,
                                "shipped_at": "2026-11-23T11:30:00Z", "lines": lines } } });
    let r = supplier
        .call_back(
            &app.url(&format!("/hooks/{SUPPLIER_CONNECTION}")),
            "cb-ship",
            &shipped,
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // The shipment is registered with the tracking service, with the carrier's 17TRACK key.
    let registered = eventually("the parcel registered at 17TRACK", WAIT, || async {
        let r = seventeen.registered();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(registered.get(NUMBER), Some(&3011), "{registered:?}");
    let order_id = app.orders().await[0]["id"].as_str().unwrap().to_string();
    eventually("tracking.registered on the timeline", WAIT, || async {
        let d = app.order(&order_id).await;
        timeline(&d)
            .contains(&"tracking.registered".to_string())
            .then_some(())
    })
    .await;
    TrackedWorld {
        app,
        supplier,
        seventeen,
        order_id,
    }
}

fn timeline(detail: &Value) -> Vec<String> {
    detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipment_is_followed_through_the_tracking_services_pushes_until_delivered() {
    let w = shipped_and_registered().await;
    let hook = w.app.url(&format!("/hooks/{TRACKING_CONNECTION}"));

    // In transit, two scans (newest first, as 17TRACK lists them).
    let in_transit = FakeSeventeenTrack::push_body(
        NUMBER,
        3011,
        seventeentrack_track_info(
            "InTransit",
            "InTransit_Departure",
            &[
                (
                    "2026-11-25T08:00:00Z",
                    "Departed from the origin country",
                    "SHANGHAI, CN",
                ),
                (
                    "2026-11-24T02:00:00Z",
                    "Accepted by the post office",
                    "SHENZHEN, CN",
                ),
            ],
        ),
    );
    let r = w.seventeen.push(&hook, in_transit.clone()).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let d = w.app.order(&w.order_id).await;
    assert_eq!(d["shipments"][0]["tracking_status"], "in_transit", "{d}");
    let scans: Vec<&str> = d["tracking_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["description"].as_str().unwrap())
        .collect();
    assert_eq!(
        scans,
        [
            "Accepted by the post office",
            "Departed from the origin country"
        ]
    );

    // The same push again is a redelivery: nothing twice.
    let r = w.seventeen.push(&hook, in_transit).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "duplicate", "{body}");

    // A forged push is refused and kept.
    let r = w
        .app
        .http
        .post(&hook)
        .header("sign", "0".repeat(64))
        .body(FakeSeventeenTrack::push_body(
            NUMBER,
            3011,
            seventeentrack_track_info("Delivered", "Delivered_Other", &[]),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let rejected = w
        .app
        .get_json(&format!(
            "/api/v1/raw-requests?connection={TRACKING_CONNECTION}&status=rejected"
        ))
        .await;
    assert_eq!(rejected["raw_requests"].as_array().unwrap().len(), 1);

    // A number Daifa does not know (the service follows parcels for others too) is skipped.
    let r = w
        .seventeen
        .push(
            &hook,
            FakeSeventeenTrack::push_body(
                "LX000000000CN",
                3011,
                seventeentrack_track_info("InTransit", "InTransit_Other", &[]),
            ),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["updates"][0]["result"], "unknown_tracking_number",
        "{body}"
    );

    // Returning to the sender: an exception on the timeline.
    let returning = FakeSeventeenTrack::push_body(
        NUMBER,
        3011,
        seventeentrack_track_info(
            "Exception",
            "Exception_Returning",
            &[(
                "2026-12-01T09:00:00Z",
                "Returned to sender: refused",
                "NEW YORK, US",
            )],
        ),
    );
    let r = w.seventeen.push(&hook, returning).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let d = w.app.order(&w.order_id).await;
    assert_eq!(d["shipments"][0]["tracking_status"], "exception");
    assert_eq!(d["shipments"][0]["tracking_detail"], "returning_to_sender");
    let exception = d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "tracking.exception")
        .expect("an exception on the timeline");
    assert_eq!(exception["detail"]["detail"], "returning_to_sender");
    assert_eq!(exception["detail"]["from"], "in_transit");

    // Delivered after all: the order is delivered.
    let delivered = FakeSeventeenTrack::push_body(
        NUMBER,
        3011,
        seventeentrack_track_info(
            "Delivered",
            "Delivered_Other",
            &[("2026-12-02T15:00:00Z", "Delivered", "NEW YORK, US")],
        ),
    );
    let r = w.seventeen.push(&hook, delivered).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let d = w.app.order(&w.order_id).await;
    assert_eq!(d["shipments"][0]["tracking_status"], "delivered");
    assert_eq!(d["order"]["status"], "delivered");
    let t = timeline(&d);
    assert!(t.contains(&"order.delivered".to_string()), "{t:?}");
    assert_eq!(d["tracking_events"].as_array().unwrap().len(), 4);
    drop(w.supplier);
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_fetches_the_tracking_of_the_parcels_a_carrier_follows() {
    let w = shipped_and_registered().await;
    w.seventeen.set_track_info(
        NUMBER,
        seventeentrack_track_info(
            "InTransit",
            "InTransit_Arrival",
            &[("2026-11-27T10:00:00Z", "Arrived at destination", "JFK, US")],
        ),
    );
    let poll = format!("/api/v1/connections/{TRACKING_CONNECTION}/poll");
    let r = w.app.post_json(&poll, &json!({})).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    // The order view reads shipments and scans with separate queries: wait for both.
    let d = eventually("the polled status", WAIT, || async {
        let d = w.app.order(&w.order_id).await;
        (d["shipments"][0]["tracking_status"] == "in_transit"
            && !d["tracking_events"].as_array().unwrap().is_empty())
        .then_some(d)
    })
    .await;
    assert_eq!(d["tracking_events"][0]["location"], "JFK, US");
    let asked = w.seventeen.requests("gettrackinfo");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0][0]["number"], NUMBER);

    // The poll's raw payload is kept: what was asked and what 17TRACK answered.
    let state = eventually("the poll recorded", WAIT, || async {
        let s = w.app.get_json(&poll).await;
        s["last_success_at_ms"].is_i64().then_some(s)
    })
    .await;
    assert_eq!(state["polling"], true);
    assert_eq!(state["consecutive_failures"], 0);
    let raw = w
        .app
        .get_json(&format!(
            "/api/v1/raw-requests?connection={TRACKING_CONNECTION}"
        ))
        .await;
    let polled = raw["raw_requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == state["last_raw_request_id"])
        .expect("the poll's raw record")
        .clone();
    assert_eq!(polled["method"], "POLL");
    assert_eq!(polled["status"], "accepted");
    let payload: Value = serde_json::from_str(polled["body"].as_str().unwrap()).unwrap();
    assert_eq!(payload["input"][0]["tracking_number"], NUMBER);
    let exchange = &payload["exchanges"][0];
    assert!(
        exchange["url"]
            .as_str()
            .unwrap()
            .ends_with("/track/v2.2/gettrackinfo"),
        "{exchange}"
    );
    assert_eq!(exchange["status"], 200);
    assert!(
        exchange["body"]
            .as_str()
            .unwrap()
            .contains("Arrived at destination")
    );

    // Delivered: the next poll sees it; after that the parcel is no longer asked about.
    w.seventeen.set_track_info(
        NUMBER,
        seventeentrack_track_info(
            "Delivered",
            "Delivered_Other",
            &[
                ("2026-11-29T16:00:00Z", "Delivered", "NEW YORK, US"),
                ("2026-11-27T10:00:00Z", "Arrived at destination", "JFK, US"),
            ],
        ),
    );
    w.app.post_json(&poll, &json!({})).await;
    eventually("delivered by polling", WAIT, || async {
        let d = w.app.order(&w.order_id).await;
        (d["order"]["status"] == "delivered").then_some(())
    })
    .await;
    let asked_before = w.seventeen.requests("gettrackinfo").len();
    let polled_at = w.app.get_json(&poll).await["last_polled_at_ms"].clone();
    w.app.post_json(&poll, &json!({})).await;
    eventually("another poll", WAIT, || async {
        let s = w.app.get_json(&poll).await;
        (s["last_polled_at_ms"] != polled_at
            && s["last_success_at_ms"].as_i64() >= s["last_polled_at_ms"].as_i64())
        .then_some(())
    })
    .await;
    assert_eq!(w.seventeen.requests("gettrackinfo").len(), asked_before);
    w.app.stop().await;
}
