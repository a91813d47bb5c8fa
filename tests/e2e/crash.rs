//! Crash under load (issue 12): signed Shopify orders sent continuously, as a storefront does
//! (each order with its own id and webhook id, sent again under the same webhook id until it
//! is answered 200), while a gateway process is killed with SIGKILL at random moments and
//! started again. On PostgreSQL two gateways share the database and one of them is killed at a
//! time; on SQLite the one gateway is. At the end: every acknowledged webhook has exactly one
//! order, every supplier order reached its supplier under one webhook id, and no stored request
//! is left unprocessed.
//!
//! CI runs a short version (`DAIFA_CRASH_KILLS`, default 4 kills); the long run is
//! `DAIFA_CRASH_KILLS=200 cargo test -p daifa --test e2e crash -- --nocapture` (see
//! docs/benchmarks.md for what it measured).

use crate::aftersales::Walk;
use crate::fakes::{FakeShopify, FakeSupplier};
use crate::helpers::*;
use crate::sigkill::{free_port, start_gateway_with, wait_healthy};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the storefront knows: the webhooks it sent and which were answered 200.
#[derive(Default)]
struct Storefront {
    /// External order id → webhook id, for every order sent.
    sent: BTreeMap<u64, String>,
    /// Orders answered 200.
    acknowledged: BTreeSet<u64>,
    /// Sends that got no 200 (refused connection, reset, 503), sent again later.
    failures: usize,
}

/// The settings each gateway process runs with: short leases (a killed worker's jobs are
/// taken over soon; a plugin call's deadline stays shorter) and a quick sweeper for what a
/// kill left unprocessed.
const ENV: [(&str, &str); 6] = [
    ("DAIFA_JOBS__LEASE", "3s"),
    ("DAIFA_PLUGINS__CALL_DEADLINE", "2s"),
    ("DAIFA_PLUGINS__CEILING__CALL_DEADLINE", "2s"),
    ("DAIFA_INGEST__STALE_AFTER", "3s"),
    ("DAIFA_INGEST__SWEEP_INTERVAL", "500ms"),
    ("DAIFA_INGEST__REPROCESS_SCHEDULE", "500ms,1s,2s,4s,8s"),
];

struct Gateway {
    api: Api,
    port: u16,
    child: Child,
}

async fn start(db_url: &str, port: u16) -> Gateway {
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    };
    let mut child = start_gateway_with(db_url, port, 2, &ENV);
    wait_healthy(&api, &mut child).await;
    Gateway { api, port, child }
}

/// Sends one order to a gateway; true when it was answered 200.
async fn send(api: &Api, external_id: u64, webhook_id: &str) -> bool {
    let mut body: Value = serde_json::from_slice(&shopify_sample()).unwrap();
    body["id"] = json!(external_id);
    body["name"] = json!(format!("#{external_id}"));
    let body = serde_json::to_vec(&body).unwrap();
    let answer = api
        .http
        .post(api.url(&format!("/hooks/{SHOP_CONNECTION}")))
        .header("content-type", "application/json")
        .header("x-shopify-topic", "orders/create")
        .header("x-shopify-webhook-id", webhook_id)
        .header("x-shopify-shop-domain", "test-shop.myshopify.com")
        .header("x-shopify-hmac-sha256", shopify_hmac(SHOPIFY_SECRET, &body))
        .body(body)
        .send()
        .await;
    answer.is_ok_and(|r| r.status() == 200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_killed_under_load_lose_nothing_and_push_each_order_once() {
    init_logs();
    let kills: usize = std::env::var("DAIFA_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let shopify = FakeShopify::start(SHOPIFY_TOKEN).await;
    let supplier = FakeSupplier::start(SUPPLIER_SECRET).await;
    let db = TestDb::new().await;
    let replicas = if db.url.starts_with("postgres") { 2 } else { 1 };
    let mut gateways = Vec::new();
    for _ in 0..replicas {
        gateways.push(start(&db.url, free_port()).await);
    }
    gateways[0]
        .api
        .set_up_connections(&shopify.base_url, &supplier.url)
        .await;
    let bases: Arc<Vec<String>> = Arc::new(gateways.iter().map(|g| g.api.base.clone()).collect());

    // The storefront: a new order every 20 ms to the gateways in turn, and each unanswered one
    // again (same webhook id) until it is answered 200, as Shopify retries.
    let store = Arc::new(Mutex::new(Storefront::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (store, stop, bases) = (store.clone(), stop.clone(), bases.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut n: u64 = 0;
            loop {
                let pending: Vec<(u64, String)> = {
                    let s = store.lock().unwrap();
                    s.sent
                        .iter()
                        .filter(|(id, _)| !s.acknowledged.contains(id))
                        .map(|(id, wh)| (*id, wh.clone()))
                        .take(20)
                        .collect()
                };
                let stopping = stop.load(Ordering::SeqCst);
                if stopping && pending.is_empty() {
                    return n;
                }
                let fresh = (!stopping).then(|| {
                    n += 1;
                    let id = 900_000 + n;
                    let webhook_id = format!("crash-{id}");
                    store.lock().unwrap().sent.insert(id, webhook_id.clone());
                    (id, webhook_id)
                });
                for (i, (id, webhook_id)) in pending.into_iter().chain(fresh).enumerate() {
                    let api = Api {
                        base: bases[(n as usize + i) % bases.len()].clone(),
                        http: client.clone(),
                    };
                    let ok = send(&api, id, &webhook_id).await;
                    let mut s = store.lock().unwrap();
                    if ok {
                        s.acknowledged.insert(id);
                    } else {
                        s.failures += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // The killer: SIGKILL a gateway at a random moment, start it again on its port.
    let started = Instant::now();
    let mut walk = Walk(0xC0A5_0000_0000_0001);
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(200 + walk.below(1300))).await;
        let i = walk.below(gateways.len() as u64) as usize;
        gateways[i].child.kill().expect("SIGKILL");
        gateways[i]
            .child
            .wait()
            .expect("reaping the killed gateway");
        let port = gateways[i].port;
        gateways[i] = start(&db.url, port).await;
    }
    stop.store(true, Ordering::SeqCst);
    let sent = tokio::time::timeout(Duration::from_secs(120), load)
        .await
        .expect("the storefront's retries all answered within 2 min")
        .unwrap();
    let under_load = started.elapsed();
    let (acknowledged, failures) = {
        let s = store.lock().unwrap();
        (s.acknowledged.clone(), s.failures)
    };
    assert_eq!(
        acknowledged.len() as u64,
        sent,
        "every order answered 200 in the end"
    );

    // Every acknowledged order pushed: one order each, each supplier order at the supplier.
    // What the gateways stored, read from the database itself (thousands of orders in a
    // long run).
    let store = daifa::db::Db::connect(&db.url).await.unwrap();
    let external_ids = || async {
        sqlx::query_scalar::<_, String>("select external_id from orders")
            .fetch_all(&store.pool)
            .await
            .unwrap()
    };
    let pushed_orders = || -> BTreeSet<String> {
        supplier
            .received_of("order.created")
            .iter()
            .filter_map(|p| {
                p.body["data"]["order"]["external_id"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    };
    eventually("every order pushed", Duration::from_secs(180), || async {
        let orders = external_ids().await;
        let pushed = pushed_orders();
        (orders.len() >= acknowledged.len() && orders.iter().all(|o| pushed.contains(o)))
            .then_some(())
    })
    .await;
    let orders = external_ids().await;
    let distinct: BTreeSet<&String> = orders.iter().collect();
    assert_eq!(
        distinct.len(),
        orders.len(),
        "one order per storefront order"
    );
    let expected: BTreeSet<String> = acknowledged.iter().map(u64::to_string).collect();
    assert_eq!(
        distinct.into_iter().cloned().collect::<BTreeSet<_>>(),
        expected,
        "exactly the acknowledged orders"
    );
    // Each supplier order reached its supplier under one webhook id (a push retried after a
    // kill is the same message).
    let mut webhook_ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in supplier.received_of("order.created") {
        webhook_ids
            .entry(
                p.body["data"]["supplier_order_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
            .or_default()
            .insert(p.webhook_id.clone());
    }
    let supplier_orders: i64 = sqlx::query_scalar("select count(*) from supplier_orders")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(
        webhook_ids.len() as i64,
        supplier_orders,
        "every supplier order pushed"
    );
    assert_eq!(
        webhook_ids.len(),
        orders.len(),
        "one supplier order per order"
    );
    for (so, ids) in &webhook_ids {
        assert_eq!(ids.len(), 1, "supplier order {so} pushed as {ids:?}");
    }
    // Nothing stored is left unprocessed: what a kill interrupted was swept up.
    eventually(
        "no stored request left unprocessed",
        Duration::from_secs(60),
        || async {
            let left: i64 =
                sqlx::query_scalar("select count(*) from raw_requests where status = 'received'")
                    .fetch_one(&store.pool)
                    .await
                    .unwrap();
            (left == 0).then_some(())
        },
    )
    .await;
    let swept: i64 = sqlx::query_scalar(
        "select count(*) from raw_requests where attempts > 0 and status in ('accepted', 'duplicate')",
    )
    .fetch_one(&store.pool)
    .await
    .unwrap();
    store.pool.close().await;
    let repushed = supplier.received_of("order.created").len() - webhook_ids.len();
    eprintln!(
        "crash: {kills} kills of {replicas} gateway(s) in {:.1} s under load; {sent} orders sent, \
         {failures} sends unanswered and sent again, all {} acknowledged with one order each; \
         {} supplier orders pushed, {repushed} pushes repeated under their first webhook id; \
         {swept} stored requests a kill interrupted processed by the sweeper",
        under_load.as_secs_f64(),
        acknowledged.len(),
        webhook_ids.len(),
    );
    for mut g in gateways {
        g.child.kill().ok();
        g.child.wait().ok();
    }
    db.drop_database().await;
}
