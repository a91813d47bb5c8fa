//! The whole ingest path, wasm adapter against native adapter. `cargo bench -p daifa --bench
//! ingest`; the numbers are in docs/benchmarks.md.
//!
//! Each iteration POSTs a new signed Shopify `orders/create` webhook (the published sample with a
//! fresh order id) to a running gateway on SQLite, and waits for the answer: HTTP, the raw
//! request stored, the adapter (verify the HMAC, translate the order), the canonical order
//! stored, routed by SKU and its supplier job enqueued, the raw request marked, the answer. The
//! two variants differ only in the adapter: the Shopify component in wasmtime, or the same Rust
//! code compiled into the process (`Application::with_native_parser`). Job workers are off, so
//! no push happens.

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use daifa::plugins::Parsed;
use daifa::services::NativeParser;
use daifa::{Application, Settings};
use daifa_plugin_host::{CallError, CallFailure, PluginError};
use hmac::{Hmac, Mac};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use daifa::bench::{SECRET, SHOP_DOMAIN};

fn sample() -> serde_json::Value {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/shopify/webhook-orders-create.sample.json"
    ))
    .expect("the Shopify sample");
    serde_json::from_slice(&bytes).expect("JSON")
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The Shopify adapter's translation compiled natively, behind the host's types.
fn native_shopify() -> NativeParser {
    Arc::new(|ctx, request| {
        let convert_err = |e: serde_json::Error| CallFailure {
            error: CallError::Trap(e.to_string()),
            retry_after: None,
        };
        let native_request: daifa_plugin_sdk::types::InboundRequest =
            serde_json::from_value(serde_json::to_value(request).map_err(convert_err)?)
                .map_err(convert_err)?;
        let secret = ctx
            .secrets
            .get("webhook_secret")
            .cloned()
            .unwrap_or_default();
        let verifier = daifa_plugin_shopify::webhook::Verifier {
            secret: secret.as_bytes(),
            // Unset, it is refused as the component refuses it (`permanent`).
            shop_domain: ctx.settings.get("shop_domain").map_or("", String::as_str),
        };
        match daifa_plugin_shopify::webhook::handle(verifier, &native_request) {
            Ok(inbound) => Ok(Parsed::Channel(
                serde_json::from_value(serde_json::to_value(inbound).map_err(convert_err)?)
                    .map_err(convert_err)?,
            )),
            Err(e) => Err(CallFailure {
                error: CallError::Plugin(
                    serde_json::from_value::<PluginError>(
                        serde_json::to_value(e).map_err(convert_err)?,
                    )
                    .map_err(convert_err)?,
                ),
                retry_after: None,
            }),
        }
    })
}

struct Running {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn start(native: bool) -> Running {
    let dir = std::env::temp_dir().join(format!("daifa-bench-{}-{native}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("bench.db");
    let mut settings = Settings::load(None).expect("default settings");
    settings.bind = "127.0.0.1:0".into();
    settings.database_url = format!("sqlite://{}?mode=rwc", db.display());
    settings.secret_key = Some("ZGFpZmEtYmVuY2gta2V5LTMyLWJ5dGVzLWxvbmcuLi4=".into());
    settings.jobs.workers = 0;
    settings.plugins.cache_dir = Some(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-plugin-cache"),
    );
    let mut app = Application::build(settings).await.expect("gateway");
    if native {
        app = app.with_native_parser("shopify", native_shopify());
    }
    daifa::bench::set_up(app.state())
        .await
        .expect("the benchmark's connections");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Running {
        base,
        stop,
        _dir: tempdir::Dir(dir),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let template = sample();
    let client = reqwest::Client::new();
    let counter = AtomicU64::new(1);
    let mut group = c.benchmark_group("ingest/shopify-orders-create");
    for (name, native) in [("wasm", false), ("native", true)] {
        let running = rt.block_on(start(native));
        let url = format!("{}/hooks/shop", running.base);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let mut order = template.clone();
                order["id"] = serde_json::json!(9_000_000_000_i64 + n as i64);
                let body = serde_json::to_vec(&order).expect("JSON");
                let request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-shopify-topic", "orders/create")
                    .header("x-shopify-shop-domain", SHOP_DOMAIN)
                    .header("x-shopify-webhook-id", format!("bench-{n}"))
                    .header("x-shopify-hmac-sha256", sign(&body))
                    .body(body);
                async move {
                    let response = request.send().await.expect("gateway answers");
                    assert_eq!(response.status(), 200);
                }
            })
        });
        let _ = running.stop.send(());
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(8));
    targets = bench
}
criterion_main!(benches);
