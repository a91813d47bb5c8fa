//! The database goes away while webhooks come in (PostgreSQL restarted, its network cut): a
//! request the gateway cannot store is answered 503, never 200, so the storefront sends it
//! again; when the database is back the gateway recovers by itself (its pool reconnects, its
//! workers carry on) and nothing it acknowledged is lost or pushed under two webhook-ids.
//!
//! The outage is a TCP proxy between the gateway and PostgreSQL that drops every connection
//! and refuses new ones, then lets them through again. SQLite is a file inside the process:
//! it has no outage of this kind, and the test says so and returns.

use crate::fakes::ReceivedPush;
use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to PostgreSQL that can cut every connection.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    piping: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let piping = Arc::new(Mutex::new(Vec::new()));
        let (up_, piping_) = (up.clone(), piping.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up_.load(Ordering::SeqCst) {
                    // Refused: closed at once, as a server that is down.
                    continue;
                }
                let target = target.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                piping_.lock().unwrap().push(pipe);
            }
        });
        Self { port, up, piping }
    }

    /// Drops every connection and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for pipe in self.piping.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn order_body(id: u64) -> Vec<u8> {
    let mut order: Value = serde_json::from_slice(&shopify_sample()).unwrap();
    order["id"] = json!(id);
    serde_json::to_vec(&order).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_answered_503_and_the_gateway_recovers_losing_nothing() {
    let Some(server) = std::env::var("DAIFA_TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
    else {
        eprintln!("skipped on SQLite: a database outage is a database server's");
        return;
    };
    let host = host_of(&server);
    let target = host.rsplit('@').next().unwrap_or(&host).to_string();
    let proxy = Proxy::start(target.clone()).await;
    let port = proxy.port;
    let w = crate::world_with(move |s| {
        s.database_url = s
            .database_url
            .replace(&target, &format!("127.0.0.1:{port}"));
    })
    .await;
    let send = |n: u64| {
        let app = &w.app;
        async move {
            app.send_shopify(
                "orders/create",
                &format!("wh-outage-{n}"),
                &order_body(7_000_000 + n),
                crate::SHOPIFY_SECRET,
            )
            .await
            .status()
            .as_u16()
        }
    };
    // Before: taken in.
    for n in 0..3 {
        assert_eq!(send(n).await, 200);
    }
    // During: never a 200.
    proxy.cut();
    let (a, b, c) = tokio::join!(send(3), send(4), send(5));
    let during = [a, b, c];
    assert!(
        during.iter().all(|s| *s == 503),
        "answers during the outage: {during:?}"
    );
    // After: the same deliveries sent again (as Shopify retries) are taken in once the gateway
    // has reconnected by itself.
    // Long enough for the job workers, the sweeper and the clocks to run into it too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    for n in 3..6 {
        eventually("the gateway back", crate::WAIT, || async {
            (send(n).await == 200).then_some(())
        })
        .await;
    }
    // Nothing acknowledged lost: six orders, each pushed to the supplier once.
    let pushes: Vec<ReceivedPush> = eventually("six pushes", crate::WAIT, || async {
        let p = w.supplier.received_of("order.created");
        (p.len() >= 6).then_some(p)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A push made while the database was away cannot be recorded as done: it is made again
    // once the database is back, under the same webhook-id, which the supplier deduplicates.
    let mut by_order: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in w.supplier.received_of("order.created") {
        by_order
            .entry(p.body["data"]["order"]["external_id"].to_string())
            .or_default()
            .insert(p.webhook_id.clone());
    }
    assert_eq!(by_order.len(), 6, "{by_order:?} ({} pushes)", pushes.len());
    assert!(
        by_order.values().all(|ids| ids.len() == 1),
        "each order pushed under one webhook-id: {by_order:?}"
    );
    assert_eq!(w.app.orders().await.len(), 6);
    w.app.stop().await;
}
