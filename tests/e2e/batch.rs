//! The ingest writer applies webhooks that arrive together in one transaction (group commit).
//! What these tests hold it to: each webhook is answered for itself as if it had come alone —
//! a redelivery in the same batch is a duplicate, a refusal undoes only its own part, a webhook
//! the database refuses fails alone and is kept for the sweeper — and nothing answered 200 is
//! lost or applied twice.

use crate::helpers::*;
use crate::routing::Suppliers;
use crate::{wait_for_pushes, world_with};
use serde_json::{Value, json};
use std::time::Duration;

/// An order's external id the database refuses while the poison is in place.
const POISONED: u64 = 4_444_444;

/// A trigger that makes the database refuse to store the order `POISONED`, as a broken disk
/// page or a constraint would: only that webhook's transaction fails.
async fn poison(db: &daifa::db::Db) {
    let statements: &[&str] = match db.backend {
        daifa::db::Backend::Sqlite => &[
            "create trigger poison before insert on orders when new.external_id = '4444444' \
             begin select raise(abort, 'poisoned order'); end",
        ],
        daifa::db::Backend::Postgres => &[
            "create function poison() returns trigger language plpgsql as $$ begin \
             if new.external_id = '4444444' then raise exception 'poisoned order'; end if; \
             return new; end $$",
            "create trigger poison before insert on orders for each row execute function poison()",
        ],
    };
    for s in statements {
        sqlx::query(*s).execute(&db.pool).await.unwrap();
    }
}

async fn cure(db: &daifa::db::Db) {
    sqlx::query("drop trigger poison on orders")
        .execute(&db.pool)
        .await
        .or(sqlx::query("drop trigger poison").execute(&db.pool).await)
        .unwrap();
}

fn order_body(sample: &Value, id: u64) -> Vec<u8> {
    let mut order = sample.clone();
    order["id"] = json!(id);
    serde_json::to_vec(&order).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_arriving_together_are_each_answered_as_if_alone() {
    let w = world_with(|s| s.ingest.batch_max = 64).await;
    poison(&w.app.state.db).await;
    let sample: Value = serde_json::from_slice(&shopify_sample()).unwrap();
    const ORDERS: u64 = 40;
    // Each order twice under one delivery id, a bad signature, an unknown connection and the
    // poisoned order: all at once.
    let mut sends = tokio::task::JoinSet::new();
    let send = |sends: &mut tokio::task::JoinSet<_>,
                what: String,
                id: u64,
                webhook: String,
                secret: &'static str| {
        let (api, body) = (w.app.api.clone(), order_body(&sample, id));
        sends.spawn(async move {
            let r = api
                .send_shopify("orders/create", &webhook, &body, secret)
                .await;
            (what, r.status().as_u16(), r.json::<Value>().await.unwrap())
        });
    };
    for n in 0..ORDERS {
        for _ in 0..2 {
            send(
                &mut sends,
                format!("order {n}"),
                7_000_000 + n,
                format!("wh-b{n}"),
                SHOPIFY_SECRET,
            );
        }
    }
    send(
        &mut sends,
        "poisoned".into(),
        POISONED,
        "wh-poison".into(),
        SHOPIFY_SECRET,
    );
    send(
        &mut sends,
        "forged".into(),
        8_000_000,
        "wh-forged".into(),
        "not-the-secret",
    );
    let api = w.app.api.clone();
    sends.spawn(async move {
        let r = api
            .http
            .post(api.url("/hooks/nobody"))
            .body("{}")
            .send()
            .await
            .unwrap();
        (
            "unknown".to_string(),
            r.status().as_u16(),
            r.json::<Value>().await.unwrap(),
        )
    });
    let answers = sends.join_all().await;

    let mut accepted = 0;
    let mut duplicates = 0;
    for (what, status, body) in &answers {
        match what.as_str() {
            "poisoned" => {
                assert_eq!(*status, 503, "{body}");
                assert!(
                    body["raw_request_id"].is_string(),
                    "kept for the sweeper: {body}"
                );
            }
            "forged" => assert_eq!(*status, 401, "{body}"),
            "unknown" => assert_eq!(*status, 404, "{body}"),
            _ => {
                assert_eq!(*status, 200, "{what}: {body}");
                match body["status"].as_str() {
                    Some("accepted") => accepted += 1,
                    Some("duplicate") => duplicates += 1,
                    other => panic!("{what}: {other:?} in {body}"),
                }
            }
        }
    }
    assert_eq!(
        (accepted, duplicates),
        (ORDERS, ORDERS),
        "each delivery applied once"
    );
    assert_eq!(w.app.orders().await.len(), ORDERS as usize);
    // Every request is stored, the refused ones with their reason.
    let raw = w.app.get_json("/api/v1/raw-requests?limit=1000").await;
    let raw = raw["raw_requests"].as_array().unwrap();
    assert_eq!(raw.len(), answers.len(), "every request stored");
    let status_of = |id: &Value| {
        raw.iter()
            .find(|r| r["id"] == *id)
            .map(|r| r["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    for (what, _, body) in &answers {
        let expected = match what.as_str() {
            "poisoned" => "received",
            "forged" | "unknown" => "rejected",
            _ => continue,
        };
        assert_eq!(status_of(&body["raw_request_id"]), expected, "{what}");
    }

    // The database takes the poisoned order again: what was kept is applied (by the operator
    // here, by the sweeper once it is stale), once.
    cure(&w.app.state.db).await;
    let kept = &answers
        .iter()
        .find(|(what, ..)| what == "poisoned")
        .unwrap()
        .2;
    let kept = kept["raw_request_id"].as_str().unwrap();
    let r = w
        .app
        .post_json(
            &format!("/api/v1/raw-requests/{kept}/reprocess"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(w.app.orders().await.len(), ORDERS as usize + 1);
    let pushes = wait_for_pushes(&w.supplier, ORDERS as usize + 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut keys: Vec<String> = w
        .supplier
        .received()
        .iter()
        .map(|p| p.webhook_id.clone())
        .collect();
    assert_eq!(keys.len(), pushes.len(), "no push after all were done");
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), ORDERS as usize + 1, "each order pushed once");
    w.app.stop().await;
}

/// Holds the database's write lock (SQLite) or the orders table (PostgreSQL) until dropped's
/// `release`: the writer's batch waits, and the webhooks sent meanwhile queue for the next one.
struct WriteLock(sqlx::pool::PoolConnection<sqlx::Any>);

impl WriteLock {
    async fn take(db: &daifa::db::Db) -> Self {
        let mut conn = db.pool.acquire().await.unwrap();
        let statements: &[&str] = match db.backend {
            daifa::db::Backend::Sqlite => &["begin immediate"],
            daifa::db::Backend::Postgres => &["begin", "lock table orders in exclusive mode"],
        };
        for s in statements {
            sqlx::raw_sql(*s).execute(&mut *conn).await.unwrap();
        }
        Self(conn)
    }

    async fn release(mut self) {
        sqlx::raw_sql("commit").execute(&mut *self.0).await.unwrap();
    }
}

/// A new order and its cancellation, and another new order and a changed copy of it, in one
/// batch: the new orders' rows wait to be written together (`db::deferred`), and what reads
/// them — the cancellation, the change that takes the first push back — comes after they are
/// written. No cancelled order ships; the changed order ships once, as changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_and_their_changes_in_one_batch_ship_as_they_were_left() {
    let w = world_with(|s| {
        s.ingest.batch_max = 64;
        s.ingest.writers = Some(1);
    })
    .await;
    let sample: Value = serde_json::from_slice(&shopify_sample()).unwrap();
    let order = |id: u64, edit: &dyn Fn(&mut Value)| {
        let mut order = sample.clone();
        order["id"] = json!(id);
        order["updated_at"] = json!("2026-12-06T10:00:00+00:00");
        edit(&mut order);
        serde_json::to_vec(&order).unwrap()
    };
    let send = |topic: &'static str, webhook: &'static str, body: Vec<u8>| {
        let api = w.app.api.clone();
        tokio::spawn(async move {
            let r = api
                .send_shopify(topic, webhook, &body, SHOPIFY_SECRET)
                .await;
            (
                webhook,
                r.status().as_u16(),
                r.json::<Value>().await.unwrap(),
            )
        })
    };
    let lock = WriteLock::take(&w.app.state.db).await;
    // The first webhook takes the writer, which waits for the lock; the next ones queue, in
    // this order, for the next batch.
    let mut sends = vec![send("orders/create", "wh-first", order(5_100_001, &|_| {}))];
    let next: [(&str, &str, Vec<u8>); 4] = [
        ("orders/create", "wh-x", order(5_100_002, &|_| {})),
        (
            "orders/cancelled",
            "wh-x-cancel",
            order(5_100_002, &|o| {
                o["cancelled_at"] = json!("2026-12-06T10:05:00+00:00");
                o["cancel_reason"] = json!("customer");
                o["updated_at"] = json!("2026-12-06T10:05:00+00:00");
            }),
        ),
        ("orders/create", "wh-z", order(5_100_003, &|_| {})),
        (
            "orders/updated",
            "wh-z-copy",
            order(5_100_003, &|o| {
                o["shipping_address"]["address1"] = json!("99 Corrected Street");
                o["updated_at"] = json!("2026-12-06T10:05:00+00:00");
            }),
        ),
    ];
    for (topic, webhook, body) in next {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sends.push(send(topic, webhook, body));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    lock.release().await;
    for send in sends {
        let (webhook, status, body) = send.await.unwrap();
        assert_eq!(status, 200, "{webhook}: {body}");
    }

    // Two orders pushed, once each: the first, and the changed one as changed.
    let pushes = wait_for_pushes(&w.supplier, 2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(w.supplier.received().len(), 2, "{pushes:#?}");
    let orders = w.app.orders().await;
    assert_eq!(orders.len(), 3);
    let detail_of = |external: &str| {
        let id = orders
            .iter()
            .find(|o| o["external_id"] == external)
            .unwrap_or_else(|| panic!("order {external}"))["id"]
            .as_str()
            .unwrap()
            .to_string();
        let app = &w.app;
        async move { app.order(&id).await }
    };
    let x = detail_of("5100002").await;
    assert_eq!(x["order"]["status"], "cancelled", "{x:#}");
    let x_so = x["supplier_orders"][0]["id"].clone();
    assert_eq!(x["supplier_orders"][0]["status"], "cancelled", "{x:#}");
    let z = detail_of("5100003").await;
    let z_sos = z["supplier_orders"].as_array().unwrap();
    let statuses: Vec<&str> = z_sos
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        z_sos.len(),
        2,
        "the first taken back, a new one pushed: {statuses:?}"
    );
    for push in w.supplier.received() {
        assert_ne!(
            push.body["data"]["supplier_order_id"], x_so,
            "the cancelled order shipped"
        );
        if z_sos
            .iter()
            .any(|s| s["id"] == push.body["data"]["supplier_order_id"])
        {
            assert_eq!(
                push.body["data"]["ship_to"]["line1"], "99 Corrected Street",
                "the changed order went out as it was left"
            );
        }
    }
    // Each order's timeline has its events in order.
    for (detail, last) in [(&x, "order.cancelled"), (&z, "order.updated")] {
        let kinds: Vec<&str> = detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["kind"].as_str())
            .collect();
        let at = |k: &str| {
            kinds
                .iter()
                .position(|x| x.starts_with(k))
                .unwrap_or_else(|| panic!("{k} in {kinds:?}"))
        };
        assert!(at("order.received") < at("order.routed"), "{kinds:?}");
        assert!(at("order.routed") < at(last), "{kinds:?}");
    }
    w.app.stop().await;
}

/// Two suppliers offering SKU-A and SKU-B, sup-a first, and a gateway whose one writer
/// takes up to 64 webhooks at a time.
async fn two_suppliers() -> Suppliers {
    let w = Suppliers::start_with(&["sup-a", "sup-b"], |s| {
        s.ingest.batch_max = 64;
        s.ingest.writers = Some(1);
    })
    .await;
    for sku in ["SKU-A", "SKU-B"] {
        w.offer(sku, "sup-a", json!({ "priority": 1, "stock": 50 }))
            .await;
        w.offer(sku, "sup-b", json!({ "priority": 2, "stock": 50 }))
            .await;
    }
    w
}

/// What is sent through the write lock: a new order of SKU-A and SKU-B (by its external id),
/// an `orders/create` webhook (its delivery id and body), or a supplier's callback.
enum Send {
    Order(u64),
    Webhook(&'static str, Vec<u8>),
    Callback(&'static str, &'static str, Value),
}

/// Sends `first` and waits for the writer to take it (it then waits for the lock), then queues
/// `rest` in their order for the writer's next batch, and lets the writer go; the answers, in
/// the order sent (what, status, body).
async fn in_one_batch(w: &Suppliers, first: Send, rest: Vec<Send>) -> Vec<(String, u16, String)> {
    let sample: Value = serde_json::from_slice(&shopify_sample()).unwrap();
    let send = |what: Send| match what {
        Send::Order(id) => {
            let mut order = sample.clone();
            order["id"] = json!(id);
            order["line_items"][0]["sku"] = json!("SKU-A");
            order["line_items"][1]["sku"] = json!("SKU-B");
            w.shopify.add_order_json(&order);
            let body = serde_json::to_vec(&order).unwrap();
            let api = w.app.api.clone();
            tokio::spawn(async move {
                let webhook = format!("wh-{id}");
                let r = api
                    .send_shopify("orders/create", &webhook, &body, SHOPIFY_SECRET)
                    .await;
                (webhook, r.status().as_u16(), r.text().await.unwrap())
            })
        }
        Send::Webhook(webhook, body) => {
            let api = w.app.api.clone();
            tokio::spawn(async move {
                let r = api
                    .send_shopify("orders/create", webhook, &body, SHOPIFY_SECRET)
                    .await;
                (
                    webhook.to_string(),
                    r.status().as_u16(),
                    r.text().await.unwrap(),
                )
            })
        }
        Send::Callback(supplier, id, message) => {
            let fake = w.supplier(supplier).clone();
            let hook = w.app.url(&format!("/hooks/{supplier}"));
            tokio::spawn(async move {
                let r = fake.call_back(&hook, id, &message).await;
                (id.to_string(), r.status().as_u16(), r.text().await.unwrap())
            })
        }
    };
    let lock = WriteLock::take(&w.app.state.db).await;
    let mut sends = vec![send(first)];
    for what in rest {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sends.push(send(what));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    lock.release().await;
    let mut answers = Vec::new();
    for send in sends {
        answers.push(send.await.unwrap());
    }
    answers
}

fn all_200(answers: &[(String, u16, String)]) {
    for (what, status, body) in answers {
        assert_eq!(*status, 200, "{what}: {body}");
    }
}

/// Each line's supplier SKU (the offer chosen, `sup-a-SKU-A`) of the order with `external` id.
async fn offers_chosen(w: &Suppliers, external: u64) -> (Vec<String>, Value) {
    let orders = w.app.orders().await;
    let external = external.to_string();
    let id = orders
        .iter()
        .find(|o| o["external_id"] == external.as_str())
        .unwrap_or_else(|| panic!("order {external}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let detail = w.app.order(&id).await;
    let mut lines: Vec<String> = detail["supplier_orders"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|so| so["lines"].as_array().unwrap().clone())
        .map(|l| l["supplier_sku"].as_str().unwrap().to_string())
        .collect();
    lines.sort();
    (lines, detail)
}

/// The new orders of a batch route on the offers and products read once for the batch
/// (`routing::prefetch`), until a webhook that may change them: a supplier's stock-out queued
/// between two new orders of one batch sends the order before it to that supplier and the one
/// after it to the next offer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stock_out_in_the_middle_of_a_batch_reroutes_the_orders_after_it() {
    let w = two_suppliers().await;
    let stock_out = json!({ "type": "product.updated", "timestamp": "2026-12-07T10:00:00Z",
                            "data": { "supplier_sku": "sup-a-SKU-A", "stock": 0 } });
    let answers = in_one_batch(
        &w,
        Send::Order(6_100_001),
        vec![
            Send::Order(6_100_002),
            Send::Callback("sup-a", "cb-stock-out", stock_out),
            Send::Order(6_100_003),
        ],
    )
    .await;
    all_200(&answers);
    let (before, detail) = offers_chosen(&w, 6_100_002).await;
    assert_eq!(
        before,
        ["sup-a-SKU-A", "sup-a-SKU-B"],
        "routed before the stock-out: {detail:#}"
    );
    let (after, detail) = offers_chosen(&w, 6_100_003).await;
    assert_eq!(
        after,
        ["sup-b-SKU-A", "sup-b-SKU-B"],
        "to the next offer, which has both SKUs: {detail:#}"
    );
    w.app.stop().await;
}

/// A supplier's daily cap holds within a batch: the supplier orders of the batch's earlier
/// orders wait to be written together (`db::deferred`) and are written before the cap counts
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_daily_cap_counts_the_supplier_orders_of_its_own_batch() {
    let w = two_suppliers().await;
    w.routing_policy(json!({ "daily_caps": { "sup-a": 2 } }))
        .await;
    let answers = in_one_batch(
        &w,
        Send::Order(6_200_001),
        (2..=5).map(|n| Send::Order(6_200_000 + n)).collect(),
    )
    .await;
    all_200(&answers);
    let mut to = std::collections::BTreeMap::new();
    for n in 1..=5 {
        let (lines, detail) = offers_chosen(&w, 6_200_000 + n).await;
        assert_eq!(lines.len(), 2, "{detail:#}");
        *to.entry(lines[0].split("-SKU").next().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(
        to,
        [("sup-a".to_string(), 2), ("sup-b".to_string(), 3)].into(),
        "two orders fill sup-a's day"
    );
    w.app.stop().await;
}

/// A batch records its storefront webhooks' delivery ids before it applies the first (one
/// statement); a webhook refused before it is applied (here a first copy with a line of
/// quantity 0) gives its delivery id back, so that a corrected redelivery under the same id is
/// applied, whether it comes in the same batch or later, and a plain repeat of an accepted one
/// is still a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_webhook_gives_its_delivery_id_back() {
    let w = two_suppliers().await;
    let sample: Value = serde_json::from_slice(&shopify_sample()).unwrap();
    let body = |id: u64, quantity: u64| {
        let mut order = sample.clone();
        order["id"] = json!(id);
        order["line_items"][0]["sku"] = json!("SKU-A");
        order["line_items"][1]["sku"] = json!("SKU-B");
        order["line_items"][0]["quantity"] = json!(quantity);
        w.shopify.add_order_json(&order);
        serde_json::to_vec(&order).unwrap()
    };
    let answers = in_one_batch(
        &w,
        Send::Order(6_300_000),
        vec![
            Send::Webhook("wh-fixed", body(6_300_001, 0)),
            Send::Webhook("wh-fixed", body(6_300_001, 1)),
            Send::Webhook("wh-fixed", body(6_300_001, 1)),
        ],
    )
    .await;
    let statuses: Vec<(u16, Option<String>)> = answers[1..]
        .iter()
        .map(|(_, status, body)| {
            let body: Value = serde_json::from_str(body).unwrap();
            (*status, body["status"].as_str().map(str::to_string))
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (422, None),
            (200, Some("accepted".into())),
            (200, Some("duplicate".into()))
        ],
        "{answers:#?}"
    );
    // Later, on its own: refused, then corrected and applied.
    let r = w
        .app
        .send_shopify(
            "orders/create",
            "wh-later",
            &body(6_300_002, 0),
            SHOPIFY_SECRET,
        )
        .await;
    assert_eq!(r.status(), 422, "{}", r.text().await.unwrap());
    let r = w
        .app
        .send_shopify(
            "orders/create",
            "wh-later",
            &body(6_300_002, 1),
            SHOPIFY_SECRET,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "accepted");
    let orders = w.app.orders().await;
    for external in ["6300001", "6300002"] {
        assert_eq!(
            orders
                .iter()
                .filter(|o| o["external_id"] == external)
                .count(),
            1,
            "{external} stored once"
        );
    }
    w.app.stop().await;
}
