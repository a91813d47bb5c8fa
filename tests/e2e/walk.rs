//! A model-based walk through orders' lives (issue 12): a seeded random sequence of what the
//! storefront, the operator and two suppliers do — orders created (some unpaid), redelivered
//! and resent, changed by the storefront (address, quantity, payment; later copies and stale
//! ones), cancelled by the storefront and by the operator, suppliers answering slowly (past their
//! worker's lease, so another worker takes the push over), failing, acknowledging at once or
//! by callback, rejecting, shipping, repeating and reordering their callbacks, missing their
//! acknowledgement deadline; the gateway's process dying between steps with work in flight and
//! a new one starting on its database — with the real gateway and its job workers racing all
//! of it. After every step the promises are checked on what the gateway shows; once the walk
//! is over and the queue has settled, what must have happened by then is checked too.

use crate::aftersales::Walk;
use crate::fakes::ReceivedPush;
use crate::helpers::*;
use crate::integrity::{cancel_on_storefront, set_ack_deadline};
use crate::routing::Suppliers;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Steps of the walk (`DAIFA_WALK_STEPS` for a longer one).
const STEPS: usize = 70;
/// Gateway crashes in a walk at the most (each costs a start).
const MAX_CRASHES: usize = 6;
const SUPPLIERS: [&str; 2] = ["a", "b"];
/// Supplier order statuses whose lines are taken.
const LIVE: [&str; 6] = [
    "pending",
    "held",
    "submitted",
    "accepted",
    "shipped",
    "cancel_requested",
];

/// A storefront order as the storefront knows it.
struct ShopOrder {
    body: Value,
    /// Daifa's id, once a create was acknowledged.
    order_id: Option<String>,
    /// Whether the storefront ever sent a copy that says paid: an order never paid is never
    /// pushed.
    ever_paid: bool,
    /// Copies sent after the first (their `updated_at` minutes).
    version: u32,
}

#[derive(Default)]
struct Tally {
    created: usize,
    redelivered: usize,
    storefront_cancels: usize,
    changes: usize,
    operator_cancels: usize,
    callbacks: usize,
    repeated: usize,
    releases: usize,
    crashes: usize,
    checks: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_walk_of_order_lives_keeps_the_three_promises() {
    init_logs();
    // A lease shorter than a slow supplier's answer: a push outlives its worker's lease and
    // another worker takes it over while it is on its way.
    let mut w = Suppliers::start_crashable(&SUPPLIERS, |s| {
        s.jobs.lease = Duration::from_millis(600);
        s.jobs.retry_schedule = vec![
            Duration::from_millis(100),
            Duration::from_millis(200),
            Duration::from_millis(300),
        ];
    })
    .await;
    set_ack_deadline(&w, "1500ms").await;
    for sku in ["SKU-A", "SKU-B"] {
        w.offer(sku, "a", json!({ "priority": 1 })).await;
        w.offer(sku, "b", json!({ "priority": 5 })).await;
    }
    let seed = std::env::var("DAIFA_WALK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x1e55_0000_0000_0012_u64);
    let steps = std::env::var("DAIFA_WALK_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(STEPS);
    let mut walk = Walk(seed);
    let mut shop: Vec<ShopOrder> = Vec::new();
    let mut sent_callbacks: Vec<(String, String, Value)> = Vec::new();
    let mut tally = Tally::default();
    for step in 0..steps {
        match walk.below(14) {
            0 | 1 if shop.len() < 8 => {
                let mut body: Value = serde_json::from_slice(&shopify_sample()).unwrap();
                body["id"] = json!(7000 + shop.len() as u64);
                body["line_items"][0]["sku"] = json!("SKU-A");
                body["line_items"][1]["sku"] = json!("SKU-B");
                body["updated_at"] = json!("2026-12-06T10:00:00Z");
                let paid = walk.below(4) != 0;
                body["financial_status"] = json!(if paid { "paid" } else { "pending" });
                // The shop has the order: the operator's cancellations reach it.
                w.shopify.add_order_json(&body);
                let r = w
                    .app
                    .send_shopify(
                        "orders/create",
                        &format!("create-{}", shop.len()),
                        &serde_json::to_vec(&body).unwrap(),
                        SHOPIFY_SECRET,
                    )
                    .await;
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                let answer: Value = r.json().await.unwrap();
                shop.push(ShopOrder {
                    body,
                    order_id: answer["orders"][0]["order_id"].as_str().map(str::to_string),
                    ever_paid: paid,
                    version: 0,
                });
                tally.created += 1;
            }
            // The storefront delivers a create again (same webhook id) or resends the order.
            2 if !shop.is_empty() => {
                let i = walk.below(shop.len() as u64) as usize;
                let id = if walk.below(2) == 0 {
                    format!("create-{i}")
                } else {
                    format!("create-{i}-again-{step}")
                };
                let r = w
                    .app
                    .send_shopify(
                        "orders/create",
                        &id,
                        &serde_json::to_vec(&shop[i].body).unwrap(),
                        SHOPIFY_SECRET,
                    )
                    .await;
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                tally.redelivered += 1;
            }
            3 if !shop.is_empty() => {
                let i = walk.below(shop.len() as u64) as usize;
                let r =
                    cancel_on_storefront(&w, &shop[i].body, &format!("cancel-{i}-{step}")).await;
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                tally.storefront_cancels += 1;
            }
            4 if !shop.is_empty() => {
                let i = walk.below(shop.len() as u64) as usize;
                if let Some(order_id) = &shop[i].order_id {
                    let r = w
                        .app
                        .post_as(
                            &format!("/api/v1/orders/{order_id}/cancel"),
                            "walk",
                            &json!({}),
                        )
                        .await;
                    let status = r.status().as_u16();
                    assert!(
                        status == 200 || status == 409,
                        "{status}: {}",
                        r.text().await.unwrap()
                    );
                    tally.operator_cancels += 1;
                }
            }
            // A supplier calls back about an order it received.
            5..=7 => {
                let name = SUPPLIERS[walk.below(2) as usize];
                let pushes = w.supplier(name).received_of("order.created");
                if pushes.is_empty() {
                    continue;
                }
                let push = &pushes[walk.below(pushes.len() as u64) as usize];
                let message = callback(&mut walk, push);
                let id = format!("cb-{step}");
                let r = w.call_back(name, &id, message.clone()).await;
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                sent_callbacks.push((name.to_string(), id, message));
                tally.callbacks += 1;
            }
            // A callback comes again: the same delivery, or a late copy under a new id.
            8 if !sent_callbacks.is_empty() => {
                let (name, id, message) =
                    sent_callbacks[walk.below(sent_callbacks.len() as u64) as usize].clone();
                let id = if walk.below(2) == 0 {
                    id
                } else {
                    format!("{id}-late-{step}")
                };
                let r = w.call_back(&name, &id, message).await;
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                tally.repeated += 1;
            }
            // A supplier's behaviour changes.
            9 => {
                let fake = w.supplier(SUPPLIERS[walk.below(2) as usize]);
                match walk.below(4) {
                    0 => fake.delay(Duration::from_millis(walk.below(1000))),
                    1 => fake.delay(Duration::ZERO),
                    2 => fake.script(&[(503, None)]),
                    _ => {
                        if walk.below(2) == 0 {
                            fake.accept_at_once()
                        }
                    }
                }
            }
            10 => {
                let holds = w.app.get_json("/api/v1/holds?status=open").await;
                let held: Vec<Value> = holds["holds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|h| h["kind"] == "double_shipment")
                    .cloned()
                    .collect();
                if let Some(hold) = held.first() {
                    let r = w
                        .app
                        .post_as(
                            &format!("/api/v1/holds/{}/release", hold["id"].as_str().unwrap()),
                            "walk",
                            &json!({}),
                        )
                        .await;
                    let status = r.status().as_u16();
                    assert!(status == 200 || status == 409, "{status}");
                    tally.releases += 1;
                }
            }
            // The storefront changes an order (a later copy), or a stale copy arrives late.
            11 if !shop.is_empty() => {
                let i = walk.below(shop.len() as u64) as usize;
                let s = &mut shop[i];
                let mut body = s.body.clone();
                let stale = walk.below(4) == 0;
                if stale {
                    body["updated_at"] = json!("2026-12-06T09:00:00Z");
                    body["financial_status"] = json!("paid");
                    body["shipping_address"]["address1"] = json!("1 Stale Street");
                } else {
                    s.version += 1;
                    body["updated_at"] = json!(format!(
                        "2026-12-06T{:02}:{:02}:00Z",
                        10 + s.version / 60,
                        s.version % 60
                    ));
                    match walk.below(3) {
                        0 => {
                            body["shipping_address"]["address1"] =
                                json!(format!("{} Walk Street", step))
                        }
                        1 => body["line_items"][0]["quantity"] = json!(1 + walk.below(3)),
                        _ => {
                            let paid = walk.below(3) != 0;
                            body["financial_status"] = json!(if paid { "paid" } else { "pending" });
                            s.ever_paid |= paid;
                        }
                    }
                    s.body = body.clone();
                }
                let r = w
                    .app
                    .send_shopify(
                        "orders/updated",
                        &format!("update-{i}-{step}"),
                        &serde_json::to_vec(&body).unwrap(),
                        SHOPIFY_SECRET,
                    )
                    .await;
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                tally.changes += 1;
            }
            // The gateway's process dies where it stands (pushes on their way, job attempts
            // and their transactions half done) and a new one starts on the same database.
            12 if tally.crashes < MAX_CRASHES => {
                tokio::time::sleep(Duration::from_millis(walk.below(300))).await;
                w.crash().await;
                tally.crashes += 1;
            }
            _ => tokio::time::sleep(Duration::from_millis(walk.below(800))).await,
        }
        check(&w, &shop, false).await;
        tally.checks += 1;
    }
    // The suppliers answer at once again; the queue settles.
    for name in SUPPLIERS {
        w.supplier(name).delay(Duration::ZERO);
    }
    settle(&w).await;
    check(&w, &shop, true).await;
    eprintln!(
        "walk (seed {seed:#x}): {} orders, {} redelivered, {} changed, {} storefront and {} operator cancellations, \
         {} callbacks ({} repeated), {} releases, {} crashes, {} checks",
        tally.created,
        tally.redelivered,
        tally.changes,
        tally.storefront_cancels,
        tally.operator_cancels,
        tally.callbacks,
        tally.repeated,
        tally.releases,
        tally.crashes,
        tally.checks + 1
    );
    w.app.stop().await;
}

/// A supplier's callback about a pushed order: mostly acknowledgements and shipments.
fn callback(walk: &mut Walk, push: &ReceivedPush) -> Value {
    let so = push.body["data"]["supplier_order_id"].clone();
    match walk.below(10) {
        0..=3 => json!({ "type": "supplier_order.accepted", "timestamp": "2026-12-06T12:00:00Z",
                         "data": { "supplier_order_id": so } }),
        4..=6 => {
            let lines: Vec<Value> = push.body["data"]["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| json!({ "line_id": l["line_id"], "quantity": l["quantity"] }))
                .collect();
            json!({ "type": "supplier_order.shipped", "timestamp": "2026-12-06T12:00:00Z",
                    "data": { "supplier_order_id": so, "shipment": { "carrier": "YunExpress",
                        "tracking_number": format!("YT{:04}", walk.below(3)),
                        "shipped_at": "2026-12-06T11:00:00Z", "lines": lines } } })
        }
        7 | 8 => json!({ "type": "supplier_order.rejected", "timestamp": "2026-12-06T12:00:00Z",
                         "data": { "supplier_order_id": so, "reason": "we do not ship there", "code": "cannot_ship_to" } }),
        _ => json!({ "type": "supplier_order.rejected", "timestamp": "2026-12-06T12:00:00Z",
                     "data": { "supplier_order_id": so, "reason": "the street does not exist", "code": "invalid_address" } }),
    }
}

/// Waits until no job is running and none is due within 10 s (the handbooks' clocks are due
/// in hours).
async fn settle(w: &Suppliers) {
    eventually("the queue to settle", Duration::from_secs(60), || async {
        let running = w.app.get_json("/api/v1/jobs?status=running").await;
        let queued = w.app.get_json("/api/v1/jobs?status=queued").await;
        let soon = now_ms() + 10_000;
        let busy = !running["jobs"].as_array().unwrap().is_empty()
            || queued["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|j| j["run_at_ms"].as_i64().unwrap() < soon);
        (!busy).then_some(())
    })
    .await;
    // The answers of the last pushes (recorded after they are sent) are in.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The promises, on what the gateway shows. `settled`: the queue is quiet, so what must follow
/// (a supplier told to cancel) has followed.
async fn check(w: &Suppliers, shop: &[ShopOrder], settled: bool) {
    let pushes: BTreeMap<&str, Vec<ReceivedPush>> = SUPPLIERS
        .iter()
        .map(|n| (*n, w.supplier(n).received()))
        .collect();
    // Nothing acknowledged is lost, nothing is applied twice: one order per storefront order.
    let orders = w.app.get_json("/api/v1/orders?limit=100").await;
    let mut per_external: BTreeMap<String, usize> = BTreeMap::new();
    for o in orders["orders"].as_array().unwrap() {
        *per_external
            .entry(o["external_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for s in shop {
        let external = s.body["id"].to_string();
        assert_eq!(
            per_external.get(&external).copied().unwrap_or(0),
            usize::from(s.order_id.is_some()),
            "storefront order {external}"
        );
    }
    for s in shop {
        let Some(order_id) = &s.order_id else {
            continue;
        };
        let detail = w.app.order(order_id).await;
        let status = detail["order"]["status"].as_str().unwrap();
        let sos = detail["supplier_orders"].as_array().unwrap();
        let timeline: Vec<&Value> = detail["timeline"].as_array().unwrap().iter().collect();
        let has_event = |kind: &str, so: &Value| {
            timeline
                .iter()
                .any(|e| e["kind"] == kind && e["detail"]["supplier_order_id"] == *so)
        };
        // An order the storefront never said was paid reaches no supplier.
        if !s.ever_paid {
            let pushed = pushes.values().flatten().any(|p| {
                p.body["type"] == "order.created"
                    && sos
                        .iter()
                        .any(|so| so["id"] == p.body["data"]["supplier_order_id"])
            });
            assert!(
                !pushed,
                "order {order_id} was never paid but was pushed\n{detail:#}"
            );
        }
        // No line is with two suppliers at once (reships aside).
        let mut taken: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for so in sos.iter().filter(|so| so["reship_of"].is_null()) {
            if LIVE.contains(&so["status"].as_str().unwrap()) {
                for line in so["lines"].as_array().unwrap() {
                    taken
                        .entry(line["external_line_id"].as_str().unwrap().to_string())
                        .or_default()
                        .push(so["id"].as_str().unwrap());
                }
            }
        }
        for (line, holders) in &taken {
            assert!(
                holders.len() <= 1,
                "order {order_id}: line {line} is with {holders:?}\n{detail:#}"
            );
        }
        let cancelled_at = timeline
            .iter()
            .find(|e| e["kind"] == "order.cancelled")
            .and_then(|e| e["created_at_ms"].as_i64());
        // A cancelled order has no supplier order that may still go out or ship.
        if status == "cancelled" {
            assert!(
                timeline.iter().any(|e| e["kind"] == "order.cancelled"),
                "order {order_id} cancelled without saying so"
            );
            // The storefront is told of the operator's cancellation once, crashes or not (a
            // second `orderCancel` is refused by the fake shop, and would leave a failure), and
            // is not told of its own.
            let by_operator = timeline
                .iter()
                .find(|e| e["kind"] == "order.cancelled")
                .is_some_and(|e| e["detail"]["by"] == "walk");
            let told = w
                .shopify
                .cancellations()
                .contains_key(&s.body["id"].to_string());
            if settled && by_operator {
                assert!(
                    told && timeline
                        .iter()
                        .any(|e| e["kind"] == "order.cancelled_on_storefront")
                        && !timeline
                            .iter()
                            .any(|e| e["kind"] == "order.storefront_cancel_failed"),
                    "order {order_id}: the operator's cancellation did not reach the storefront once\n{detail:#}"
                );
            }
            if !by_operator {
                assert!(
                    !told,
                    "order {order_id}: the storefront cancelled it, yet was asked to\n{detail:#}"
                );
            }
            for so in sos {
                let st = so["status"].as_str().unwrap();
                assert!(
                    !matches!(
                        st,
                        "pending" | "held" | "submitted" | "accepted" | "shipped"
                    ),
                    "order {order_id} is cancelled but supplier order {} is {st}\n{detail:#}",
                    so["id"]
                );
            }
            assert!(
                detail["shipments"].as_array().unwrap().is_empty(),
                "a cancelled order with a shipment: {detail:#}"
            );
        }
        for so in sos {
            let id = &so["id"];
            let st = so["status"].as_str().unwrap();
            // The timeline explains each fail-over.
            if matches!(st, "timed_out" | "undeliverable" | "rejected") {
                assert!(
                    has_event("supplier_order.failed_over", id)
                        || has_event("supplier_order.rejected", id),
                    "supplier order {id} is {st} without a reason on the timeline"
                );
            }
            let reached: Vec<&ReceivedPush> = pushes
                .values()
                .flatten()
                .filter(|p| {
                    p.body["type"] == "order.created" && p.body["data"]["supplier_order_id"] == *id
                })
                .collect();
            // Every push of a supplier order carries one webhook id.
            let ids: BTreeSet<&str> = reached.iter().map(|p| p.webhook_id.as_str()).collect();
            assert!(ids.len() <= 1, "supplier order {id} pushed as {ids:?}");
            if settled {
                // Nothing goes out to a supplier after its order was cancelled: every push that
                // arrived after it came from an attempt on its way at that moment — one that
                // began before and had not finished, or one a crash killed (it left no record:
                // the claims of the job outnumber its recorded attempts).
                if let Some(at) = cancelled_at {
                    let key = format!("{}.submit", id.as_str().unwrap());
                    let submit = detail["jobs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|j| j["idempotency_key"] == key.as_str());
                    let (mut in_flight, mut killed) = (0, 0);
                    for job in submit {
                        let log = job["attempt_log"].as_array().unwrap();
                        in_flight += log
                            .iter()
                            .filter(|a| {
                                a["started_at_ms"].as_i64().unwrap() <= at
                                    && a["finished_at_ms"].as_i64().unwrap() >= at
                            })
                            .count();
                        killed += job["attempts"].as_u64().unwrap() as usize - log.len();
                    }
                    let after: Vec<i64> = reached
                        .iter()
                        .map(|p| p.received_at_ms)
                        .filter(|r| *r > at)
                        .collect();
                    assert!(
                        after.len() <= in_flight + killed,
                        "supplier order {id}: {} pushes arrived after its order was cancelled (at {after:?}), \
                         {in_flight} attempts were on their way then and {killed} were killed\n{detail:#}",
                        after.len()
                    );
                }
                let accepted_by_supplier = reached
                    .iter()
                    .any(|p| p.answer.is_some_and(|a| (200..300).contains(&a)));
                let stopped = matches!(
                    st,
                    "timed_out" | "undeliverable" | "cancelled" | "cancel_requested"
                );
                if accepted_by_supplier && stopped {
                    let asked = pushes.values().flatten().any(|p| {
                        p.body["type"] == "order.cancel_requested"
                            && p.body["data"]["supplier_order_id"] == *id
                    });
                    assert!(
                        asked,
                        "supplier order {id} ({st}) reached its supplier, which was never asked to cancel it\n{detail:#}"
                    );
                }
                assert_ne!(
                    st, "cancel_requested",
                    "the fake suppliers answer every cancellation"
                );
            }
        }
    }
    if settled {
        let stale = w.app.get_json("/api/v1/raw-requests?status=received").await;
        assert_eq!(
            stale["raw_requests"].as_array().unwrap().len(),
            0,
            "{stale:#}"
        );
    }
}
