//! A gateway process killed with SIGKILL between accepting an order and pushing it delivers the
//! push after a restart: the accepted order and its job were durable before the 200.

use crate::fakes::{FakeShopify, FakeSupplier};
use crate::helpers::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_gateway(db_url: &str, port: u16, workers: usize) -> Child {
    start_gateway_with(db_url, port, workers, &[])
}

/// The `daifa` binary serving on `port`, with more `DAIFA_*` settings.
pub(crate) fn start_gateway_with(
    db_url: &str,
    port: u16,
    workers: usize,
    env: &[(&str, &str)],
) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_daifa"));
    cmd.arg("serve")
        .env("DAIFA_BIND", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", db_url)
        .env("DAIFA_JOBS__WORKERS", workers.to_string())
        .env("DAIFA_JOBS__POLL_INTERVAL", "50ms")
        .env("DAIFA_JOBS__RETRY_SCHEDULE", "200ms,200ms")
        .env("DAIFA_PLUGINS__CACHE_DIR", plugin_cache_dir())
        .env(
            "DAIFA_SECRET_KEY",
            test_settings("").secret_key.unwrap_or_default(),
        )
        .stdin(Stdio::null());
    cmd.envs(env.iter().copied());
    if std::env::var_os("TEST_LOG").is_none() {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    cmd.spawn().expect("starting the daifa binary")
}

pub(crate) async fn wait_healthy(api: &Api, child: &mut Child) {
    let started = std::time::Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the gateway exited early: {status}");
        }
        if let Ok(r) = api.http.get(api.url("/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the gateway did not answer /healthz within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_between_accepting_and_pushing_pushes_after_restart() {
    init_logs();
    let shopify = FakeShopify::start(SHOPIFY_TOKEN).await;
    let supplier = FakeSupplier::start(SUPPLIER_SECRET).await;
    let db = TestDb::new().await;
    let port = free_port();
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };

    // No workers: the order is accepted and its push job written, but nothing pushes it.
    let mut first = start_gateway(&db.url, port, 0);
    wait_healthy(&api, &mut first).await;
    api.set_up_connections(&shopify.base_url, &supplier.url)
        .await;
    let r = api
        .send_shopify(
            "orders/create",
            "wh-kill",
            &shopify_sample(),
            SHOPIFY_SECRET,
        )
        .await;
    assert_eq!(r.status(), 200);
    first.kill().expect("SIGKILL");
    first.wait().expect("reaping the killed gateway");
    assert!(
        supplier.received().is_empty(),
        "nothing was pushed before the kill"
    );

    let mut second = start_gateway(&db.url, port, 2);
    wait_healthy(&api, &mut second).await;
    let pushes = eventually(
        "the push after restart",
        Duration::from_secs(20),
        || async {
            let r = supplier.received();
            (!r.is_empty()).then_some(r)
        },
    )
    .await;
    assert!(pushes[0].signature_valid);
    assert_eq!(
        pushes[0].body["data"]["order"]["external_id"],
        "820982911946154508"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(supplier.received().len(), 1);
    assert_eq!(api.orders().await.len(), 1);
    second.kill().ok();
    second.wait().ok();
    db.drop_database().await;
}
