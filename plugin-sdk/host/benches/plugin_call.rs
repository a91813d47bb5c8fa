//! Plugin call overhead. `cargo bench -p daifa-plugin-host --bench plugin_call`; the numbers and
//! how to read them are in docs/benchmarks.md.
//!
//! - `wasm/shopify/handle-inbound`: what the gateway does per webhook: a fresh `Store`,
//!   instantiation from the `InstancePre`, the call (HMAC check and JSON translation of Shopify's
//!   published sample order inside the component), and the canonical order copied out.
//! - `native/shopify/handle-inbound`: the same translation compiled natively (the plugin's own
//!   functions called directly), the baseline of the ratio.
//! - `wasm/minimal/handle-inbound`: instantiate and call a component that does nearly nothing:
//!   the fixed cost of a call.
//! - `…-pooled`: the same with instances from wasmtime's pooling allocator (the gateway's
//!   default); `…-warm`: the call made in an instance kept from the previous call of the same
//!   connection (warm-instance reuse), which skips instantiation altogether.

use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use daifa_plugin_host::harness::ScriptedHttp;
use daifa_plugin_host::{
    Allocator, ConnectionContext, EngineConfig, HttpHeader, InboundRequest, LoadedPlugin,
    PluginEngine, PluginKind, PluginSpec, PoolConfig,
};
use hmac::{Hmac, Mac};
use std::hint::black_box;
use std::sync::Arc;

const SECRET: &str = "bench-secret";
const SHOP: &str = "bench.myshopify.com";

fn sample() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/shopify/webhook-orders-create.sample.json"
    ))
    .expect("the Shopify sample fixture")
}

fn signature(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn headers(body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "application/json".into()),
        ("x-shopify-topic".into(), "orders/create".into()),
        ("x-shopify-shop-domain".into(), SHOP.into()),
        ("x-shopify-webhook-id".into(), "bench-1".into()),
        ("x-shopify-hmac-sha256".into(), signature(body)),
    ]
}

fn load(engine: &PluginEngine, name: &str, wasm: &[u8]) -> LoadedPlugin {
    load_reusing(engine, name, wasm, 0)
}

fn load_reusing(engine: &PluginEngine, name: &str, wasm: &[u8], reuse_calls: u32) -> LoadedPlugin {
    engine
        .load_spec(
            PluginSpec {
                name: name.into(),
                version: "bench".into(),
                kind: PluginKind::Channel,
                limits: engine.config().limits.clone(),
                reuse_calls,
            },
            wasm,
        )
        .expect("loading a bundled component")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let engine =
        PluginEngine::new(EngineConfig::default(), Arc::new(ScriptedHttp::new())).expect("engine");
    let shopify_wasm = daifa_bundled_plugins::get("shopify")
        .expect("bundled shopify")
        .wasm;
    let minimal_wasm = daifa_bundled_plugins::TEST_PLUGINS
        .iter()
        .find(|p| p.name == "misbehaving")
        .expect("test plugin")
        .wasm;
    let shopify = load(&engine, "shopify", shopify_wasm);
    let minimal = load(&engine, "misbehaving", minimal_wasm);
    let shopify_warm = load_reusing(&engine, "shopify", shopify_wasm, u32::MAX);
    let minimal_warm = load_reusing(&engine, "misbehaving", minimal_wasm, u32::MAX);
    let pooled_engine = PluginEngine::new(
        EngineConfig {
            pool: Some(PoolConfig {
                instances: 64,
                max_memory_bytes: 256 << 20,
            }),
            ..EngineConfig::default()
        },
        Arc::new(ScriptedHttp::new()),
    )
    .expect("pooled engine");
    assert_eq!(pooled_engine.allocator(), Allocator::Pooling);
    let shopify_pooled = load(&pooled_engine, "shopify", shopify_wasm);
    let minimal_pooled = load(&pooled_engine, "misbehaving", minimal_wasm);
    let ctx = Arc::new(ConnectionContext {
        plugin: "shopify".into(),
        connection: "bench".into(),
        settings: [("shop_domain".to_string(), SHOP.to_string())].into(),
        secrets: [("webhook_secret".to_string(), SECRET.to_string())].into(),
        ..ConnectionContext::default()
    });
    let body = sample();
    let wasm_request = InboundRequest {
        method: "POST".into(),
        path: "/hooks/bench".into(),
        headers: headers(&body)
            .into_iter()
            .map(|(name, value)| HttpHeader { name, value })
            .collect(),
        body: body.clone(),
    };
    let native_request = daifa_plugin_sdk::types::InboundRequest {
        method: "POST".into(),
        path: "/hooks/bench".into(),
        headers: headers(&body)
            .into_iter()
            .map(|(name, value)| daifa_plugin_sdk::types::HttpHeader { name, value })
            .collect(),
        body: body.clone(),
    };
    let tiny = InboundRequest {
        method: "POST".into(),
        path: "/".into(),
        headers: vec![],
        body: b"ping".to_vec(),
    };

    let mut group = c.benchmark_group("shopify/handle-inbound");
    group.bench_function("wasm", |b| {
        b.to_async(&rt).iter(|| async {
            let inbound = shopify
                .handle_inbound(ctx.clone(), black_box(&wasm_request))
                .await
                .expect("the sample parses");
            black_box(inbound)
        })
    });
    for (name, plugin) in [
        ("wasm-pooled", &shopify_pooled),
        ("wasm-warm", &shopify_warm),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let inbound = plugin
                    .handle_inbound(ctx.clone(), black_box(&wasm_request))
                    .await
                    .expect("the sample parses");
                black_box(inbound)
            })
        });
    }
    group.bench_function("native", |b| {
        b.iter(|| {
            let verifier = daifa_plugin_shopify::webhook::Verifier {
                secret: SECRET.as_bytes(),
                shop_domain: SHOP,
            };
            black_box(
                daifa_plugin_shopify::webhook::handle(verifier, black_box(&native_request))
                    .expect("the sample parses"),
            )
        })
    });
    group.finish();

    let mut group = c.benchmark_group("minimal/handle-inbound");
    for (name, plugin) in [
        ("instantiate-and-call", &minimal),
        ("instantiate-and-call-pooled", &minimal_pooled),
        ("warm-call", &minimal_warm),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                black_box(
                    plugin
                        .handle_inbound(ctx.clone(), black_box(&tiny))
                        .await
                        .expect("echo"),
                )
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
