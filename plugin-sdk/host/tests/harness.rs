//! The host as the plugin test harness: real components through the wasm boundary.
//!
//! The Shopify component is the one the gateway ships (`daifa_bundled_plugins::PLUGINS`); the
//! misbehaving one (`TEST_PLUGINS`, `plugins/testing/misbehaving`) loops, overflows its stack,
//! exhausts its memory, panics and answers too much on request, to check that every such call
//! ends with a typed error within its limits and leaves the engine usable.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use daifa_bundled_plugins::BundledPlugin;
use daifa_plugin_host::carrier::Parcel;
use daifa_plugin_host::channel::{
    CancelOrderRequest, CancelReason, ChannelEvent, FulfillmentRequest, Inbound, RefundRequest,
    ReturnDecision,
};
use daifa_plugin_host::harness::ScriptedHttp;
use daifa_plugin_host::supplier::{
    CancelRequest, ReturnRequest, SupplierEvent, SupplierOrder, SupplierOrderLine, UpdateAnswer,
    UpdateRequest,
};
use daifa_plugin_host::{
    Address, CallError, CallFailure, CallLimits, CaseKind, CaseReason, ConnectionContext, Contact,
    EngineConfig, HttpHeader, InboundRequest, LineQuantity, LoadedPlugin, Money, OutboundResponse,
    PaymentStatus, PluginEngine, PluginError, PluginKind, PollRequest, ReturnKind, Shipment,
    SupplierOrderRef, SupplierOrderStatus, TrackingStatus,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const ORDERS_CREATE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/shopify/webhook-orders-create.sample.json"
));
const FULFILLMENT_CREATE_DATA: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/shopify/graphql-fulfillmentCreate.response-data.json"
));

const WEBHOOK_SECRET: &str = "harness-webhook-secret";
const SHOP: &str = "daifa-harness.myshopify.com";
const ADMIN_HOST: &str = "admin.daifa-harness.test";
const ACCESS_TOKEN: &str = "shpat_harness_token";
const PEER_HOST: &str = "peer.daifa-harness.test";

/// Short, so that the deadline tests are quick; well above a normal call's few milliseconds.
const DEADLINE: Duration = Duration::from_millis(500);
const SMALL_MEMORY: usize = 16 << 20;

fn bundled(name: &str) -> &'static BundledPlugin {
    daifa_bundled_plugins::get(name).unwrap_or_else(|| panic!("`{name}` is not bundled"))
}

fn test_plugin(name: &str) -> &'static BundledPlugin {
    daifa_bundled_plugins::TEST_PLUGINS
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("`{name}` is not a test plugin"))
}

fn engine_with(config: EngineConfig) -> (PluginEngine, Arc<ScriptedHttp>) {
    let http = Arc::new(ScriptedHttp::new());
    let engine = PluginEngine::new(config, http.clone()).expect("engine");
    (engine, http)
}

fn limits(deadline: Duration, memory_bytes: usize) -> EngineConfig {
    EngineConfig {
        limits: CallLimits {
            deadline,
            memory_bytes,
            ..CallLimits::default()
        },
        ..EngineConfig::default()
    }
}

fn load(engine: &PluginEngine, plugin: &BundledPlugin) -> LoadedPlugin {
    assert_eq!(plugin.kind, "channel");
    engine
        .load(plugin.name, PluginKind::Channel, plugin.wasm)
        .expect("loading the component")
}

/// The misbehaving component on an engine of its own, with a 500 ms deadline.
fn misbehaving(memory_bytes: usize) -> (LoadedPlugin, Arc<ScriptedHttp>) {
    let (engine, http) = engine_with(limits(DEADLINE, memory_bytes));
    (load(&engine, test_plugin("misbehaving")), http)
}

fn header(name: &str, value: &str) -> HttpHeader {
    HttpHeader {
        name: name.into(),
        value: value.into(),
    }
}

fn context(
    settings: &[(&str, &str)],
    secrets: &[(&str, &str)],
    allowed_hosts: &[&str],
) -> Arc<ConnectionContext> {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    Arc::new(ConnectionContext {
        plugin: "harness".into(),
        connection: "harness".into(),
        settings: map(settings),
        secrets: map(secrets),
        allowed_hosts: allowed_hosts.iter().map(|h| h.to_string()).collect(),
        ..ConnectionContext::default()
    })
}

fn post(headers: Vec<HttpHeader>, body: &[u8]) -> InboundRequest {
    InboundRequest {
        method: "POST".into(),
        path: "/hooks/harness".into(),
        headers,
        body: body.to_vec(),
    }
}

/// base64(HMAC-SHA256(secret, body)), as Shopify signs webhooks.
fn shopify_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn shopify_delivery(secret: &str, body: &[u8]) -> InboundRequest {
    post(
        vec![
            header("content-type", "application/json"),
            header("x-shopify-topic", "orders/create"),
            header("x-shopify-shop-domain", SHOP),
            header("x-shopify-webhook-id", "harness-delivery-1"),
            header("x-shopify-hmac-sha256", &shopify_signature(secret, body)),
        ],
        body,
    )
}

fn shopify_inbound_context() -> Arc<ConnectionContext> {
    context(
        &[("shop_domain", SHOP)],
        &[("webhook_secret", WEBHOOK_SECRET)],
        &[],
    )
}

fn failure<T: std::fmt::Debug>(result: Result<T, CallFailure>) -> CallFailure {
    match result {
        Ok(value) => panic!("expected the call to fail, it returned {value:?}"),
        Err(failure) => failure,
    }
}

/// Asserts the published sample order came through whole.
fn assert_sample_order(inbound: &Inbound) {
    assert_eq!(inbound.delivery_id.as_deref(), Some("harness-delivery-1"));
    assert_eq!(inbound.topic.as_deref(), Some("orders/create"));
    let [ChannelEvent::OrderPlaced(order)] = inbound.events.as_slice() else {
        panic!("expected one placed order, got {:?}", inbound.events);
    };
    assert_eq!(order.external_id, "820982911946154508");
    assert_eq!(order.storefront, "shopify");
    assert_eq!(order.lines.len(), 2);
    assert_eq!(
        order.total,
        Money {
            amount_minor: 38800,
            currency: "USD".into()
        }
    );
}

#[tokio::test]
async fn shopify_parses_the_published_sample_order_through_the_wasm_boundary() {
    let (engine, http) = engine_with(EngineConfig::default());
    let shopify = load(&engine, bundled("shopify"));

    let inbound = shopify
        .handle_inbound(
            shopify_inbound_context(),
            &shopify_delivery(WEBHOOK_SECRET, ORDERS_CREATE),
        )
        .await
        .expect("a correctly signed sample order");
    assert_sample_order(&inbound);

    // Without `shop_domain` a connection would take the webhooks of every shop the app is
    // installed on: it handles none (the connection's set-up, not the sender, is wrong).
    let unset = context(&[], &[("webhook_secret", WEBHOOK_SECRET)], &[]);
    let unset = failure(
        shopify
            .handle_inbound(unset, &shopify_delivery(WEBHOOK_SECRET, ORDERS_CREATE))
            .await,
    );
    assert!(
        matches!(&unset.error, CallError::Plugin(PluginError::Permanent(m)) if m.contains("shop_domain")),
        "{unset:?}"
    );
    // A webhook that does not say its shop is refused.
    let mut anonymous = shopify_delivery(WEBHOOK_SECRET, ORDERS_CREATE);
    anonymous
        .headers
        .retain(|h| h.name != "x-shopify-shop-domain");
    let anonymous = failure(
        shopify
            .handle_inbound(shopify_inbound_context(), &anonymous)
            .await,
    );
    assert!(
        matches!(&anonymous.error, CallError::Plugin(PluginError::BadSignature(m)) if m.contains("x-shopify-shop-domain")),
        "{anonymous:?}"
    );

    let wrong = failure(
        shopify
            .handle_inbound(
                shopify_inbound_context(),
                &shopify_delivery("not-the-secret", ORDERS_CREATE),
            )
            .await,
    );
    assert!(
        matches!(wrong.error, CallError::Plugin(PluginError::BadSignature(_))),
        "{wrong:?}"
    );
    assert_eq!(wrong.retry_after, None);
    assert!(!wrong.error.is_retryable());
    assert!(http.requests().is_empty(), "webhooks make no requests");
}

fn fulfillment_request() -> FulfillmentRequest {
    let line = |id: &str| LineQuantity {
        external_line_id: id.into(),
        quantity: 1,
    };
    FulfillmentRequest {
        order_external_id: "820982911946154508".into(),
        shipment_id: "shp_harness_1".into(),
        shipment: Shipment {
            lines: vec![line("866550311766439020"), line("141249953214522974")],
            carrier_code: "UPS".into(),
            tracking_number: "1Z001985YW99744790".into(),
            tracking_url: Some(
                "https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums=1Z001985YW99744790"
                    .into(),
            ),
            shipped_at: 1_700_000_000_000,
        },
        notify_customer: true,
    }
}

/// The Admin API's answers: the order's open fulfillment order, then the published
/// `fulfillmentCreate` answer.
fn script_shopify_admin(http: &ScriptedHttp) {
    let fo_line = |id: u32, line_item: &str| {
        serde_json::json!({
            "id": format!("gid://shopify/FulfillmentOrderLineItem/{id}"),
            "remainingQuantity": 1,
            "lineItem": { "id": format!("gid://shopify/LineItem/{line_item}") }
        })
    };
    http.respond_json(
        200,
        &serde_json::json!({ "data": { "order": {
            "id": "gid://shopify/Order/820982911946154508",
            "fulfillments": [],
            "fulfillmentOrders": {
                "pageInfo": { "hasNextPage": false },
                "nodes": [{
                    "id": "gid://shopify/FulfillmentOrder/1",
                    "status": "OPEN",
                    "lineItems": {
                        "pageInfo": { "hasNextPage": false },
                        "nodes": [fo_line(11, "866550311766439020"), fo_line(12, "141249953214522974")]
                    }
                }]
            }
        }}}),
    );
    let created: serde_json::Value =
        serde_json::from_slice(FULFILLMENT_CREATE_DATA).expect("fixture is json");
    http.respond_json(200, &serde_json::json!({ "data": created }));
}

fn shopify_admin_context(allowed_hosts: &[&str]) -> Arc<ConnectionContext> {
    context(
        &[
            ("shop_domain", SHOP),
            ("admin_base_url", &format!("https://{ADMIN_HOST}")),
            ("api_version", "2025-07"),
        ],
        &[("access_token", ACCESS_TOKEN)],
        allowed_hosts,
    )
}

#[tokio::test]
async fn shopify_push_fulfillment_queries_then_creates_on_the_allowed_host() {
    let (engine, http) = engine_with(EngineConfig::default());
    let shopify = load(&engine, bundled("shopify"));
    script_shopify_admin(&http);

    let created = shopify
        .push_fulfillment(shopify_admin_context(&[ADMIN_HOST]), &fulfillment_request())
        .await
        .expect("fulfillment created");
    assert_eq!(created.external_id, "gid://shopify/Fulfillment/1");

    let requests = http.requests();
    assert_eq!(requests.len(), 2, "the order query, then fulfillmentCreate");
    let mut bodies = Vec::new();
    for (url, request) in &requests {
        assert_eq!(url.host_str(), Some(ADMIN_HOST));
        assert_eq!(
            url.as_str(),
            format!("https://{ADMIN_HOST}/admin/api/2025-07/graphql.json")
        );
        assert_eq!(request.method, "POST");
        let token = request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("x-shopify-access-token"))
            .map(|h| h.value.as_str());
        assert_eq!(token, Some(ACCESS_TOKEN));
        bodies.push(serde_json::from_slice::<serde_json::Value>(&request.body).expect("json"));
    }
    let query = |b: &serde_json::Value| b["query"].as_str().unwrap_or_default().to_string();
    assert!(query(&bodies[0]).contains("fulfillmentOrders"));
    assert_eq!(
        bodies[0]["variables"]["id"],
        "gid://shopify/Order/820982911946154508"
    );
    assert!(query(&bodies[1]).contains("fulfillmentCreate"));
    let input = &bodies[1]["variables"]["fulfillment"];
    assert_eq!(input["trackingInfo"]["number"], "1Z001985YW99744790");
    assert_eq!(
        input["lineItemsByFulfillmentOrder"][0]["fulfillmentOrderLineItems"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn shopify_push_fulfillment_to_a_host_not_allowed_is_refused_before_any_request() {
    let (engine, http) = engine_with(EngineConfig::default());
    let shopify = load(&engine, bundled("shopify"));
    script_shopify_admin(&http);

    let refused = failure(
        shopify
            .push_fulfillment(
                shopify_admin_context(&["somewhere-else.test"]),
                &fulfillment_request(),
            )
            .await,
    );
    match &refused.error {
        CallError::Plugin(PluginError::Permanent(message)) => {
            assert!(message.contains("allowed hosts"), "{message}");
            assert!(message.contains(ADMIN_HOST), "{message}");
        }
        other => panic!("expected a permanent plugin error, got {other:?}"),
    }
    assert!(!refused.error.is_retryable());
    assert!(http.requests().is_empty(), "{:?}", http.requests());
}

/// A call that behaves: the body comes back as the topic.
async fn assert_still_works(plugin: &LoadedPlugin) {
    let inbound = plugin
        .handle_inbound(context(&[], &[], &[]), &post(vec![], b"still here"))
        .await
        .expect("a normal call after a misbehaving one");
    assert_eq!(inbound.topic.as_deref(), Some("still here"));
}

async fn misbehave(plugin: &LoadedPlugin, body: &str) -> CallFailure {
    failure(
        plugin
            .handle_inbound(context(&[], &[], &[]), &post(vec![], body.as_bytes()))
            .await,
    )
}

fn assert_trap(failure: &CallFailure, what: &str) {
    match &failure.error {
        // The message is the wasm backtrace; its last line says why.
        CallError::Trap(message) => eprintln!(
            "{what}: trap: {}",
            message.lines().last().unwrap_or_default()
        ),
        other => panic!("{what}: expected a trap, got {other:?}"),
    }
    assert!(failure.error.is_retryable());
}

#[test]
fn the_misbehaving_plugin_is_not_one_the_gateway_loads() {
    assert!(daifa_bundled_plugins::get("misbehaving").is_none());
    assert!(
        daifa_bundled_plugins::PLUGINS
            .iter()
            .all(|p| p.name != "misbehaving")
    );
}

#[tokio::test]
async fn an_endless_loop_is_stopped_at_the_deadline() {
    let (plugin, _http) = misbehaving(SMALL_MEMORY);
    assert_still_works(&plugin).await;

    let started = Instant::now();
    let stopped = misbehave(&plugin, "loop").await;
    let elapsed = started.elapsed();
    eprintln!("loop: stopped after {elapsed:?} (deadline {DEADLINE:?})");
    assert!(
        matches!(stopped.error, CallError::Deadline(d) if d == DEADLINE),
        "{stopped:?}"
    );
    // The deadline is checked on the engine's epoch ticks (10 ms).
    assert!(
        elapsed >= DEADLINE - Duration::from_millis(10),
        "stopped early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "stopped late: {elapsed:?}"
    );
    assert_still_works(&plugin).await;
}

#[tokio::test]
async fn unbounded_recursion_traps() {
    let (plugin, _http) = misbehaving(SMALL_MEMORY);
    assert_trap(&misbehave(&plugin, "recurse").await, "recurse");
    assert_still_works(&plugin).await;
}

#[tokio::test]
async fn exhausting_memory_traps_at_the_cap() {
    let (plugin, _http) = misbehaving(SMALL_MEMORY);
    assert_trap(&misbehave(&plugin, "alloc").await, "alloc");
    assert_still_works(&plugin).await;
}

#[tokio::test]
async fn a_panic_traps() {
    let (plugin, _http) = misbehaving(SMALL_MEMORY);
    assert_trap(&misbehave(&plugin, "panic").await, "panic");
    assert_still_works(&plugin).await;
}

/// The plugin builds its answer in its own linear memory before the host lifts it. Under a
/// 16 MiB cap the 50 MB topic cannot be allocated: `memory.grow` is refused, Rust's
/// allocation-failure handler aborts and the call traps; the host never sees the string. Under a
/// cap that holds it (64 MiB, the default) the host lifts the 50 MB and refuses it as over
/// `max_output_bytes` (4 MiB by default): a typed, final error, not a retry.
#[tokio::test]
async fn a_huge_answer_is_bounded_by_the_memory_cap_and_the_output_limit() {
    let (plugin, _http) = misbehaving(SMALL_MEMORY);
    assert_trap(&misbehave(&plugin, "huge").await, "huge under 16 MiB");
    assert_still_works(&plugin).await;

    let (roomy, _http) = misbehaving(CallLimits::default().memory_bytes);
    let failure = roomy
        .handle_inbound(context(&[], &[], &[]), &post(vec![], b"huge"))
        .await
        .expect_err("50 MB is over the output limit");
    match failure.error {
        CallError::OutputTooLarge { size, limit } => {
            assert!(size > 50 * 1024 * 1024, "{size}");
            assert_eq!(limit, CallLimits::default().max_output_bytes);
        }
        other => panic!("expected output-too-large, got {other:?}"),
    }
    assert!(!failure.error.is_retryable());
    assert_still_works(&roomy).await;
}

#[tokio::test]
async fn a_request_over_the_input_limit_is_refused_before_the_call() {
    let (plugin, _http) = misbehaving(SMALL_MEMORY);
    let limit = CallLimits::default().max_input_bytes;
    let body = vec![b' '; limit + 1];
    let failure = plugin
        .handle_inbound(context(&[], &[], &[]), &post(vec![], &body))
        .await
        .expect_err("over the input limit");
    assert!(
        matches!(failure.error, CallError::InputTooLarge { size, limit: l } if size == limit + 1 && l == limit),
        "{:?}",
        failure.error
    );
    assert!(!failure.error.is_retryable());
}

#[tokio::test]
async fn outbound_statuses_errors_and_retry_after_reach_the_caller() {
    let (plugin, http) = misbehaving(SMALL_MEMORY);
    let ctx = context(&[], &[], &[PEER_HOST]);
    let unavailable = || OutboundResponse {
        status: 503,
        headers: vec![header("retry-after", "7")],
        body: b"down for maintenance".to_vec(),
    };
    let url = format!("https://{PEER_HOST}/status");

    // The plugin sees the status as it is.
    http.respond(unavailable());
    let inbound = plugin
        .handle_inbound(
            ctx.clone(),
            &post(vec![], format!("fetch:{url}").as_bytes()),
        )
        .await
        .expect("any status is an answer");
    assert_eq!(inbound.topic.as_deref(), Some("status:503"));

    // When it then fails transiently, the caller learns how long the peer asked to wait.
    http.respond(unavailable());
    let failed = failure(
        plugin
            .handle_inbound(
                ctx.clone(),
                &post(vec![], format!("fetch-fail:{url}").as_bytes()),
            )
            .await,
    );
    assert!(
        matches!(&failed.error, CallError::Plugin(PluginError::Transient(m)) if m.contains("503")),
        "{failed:?}"
    );
    assert_eq!(failed.retry_after, Some(Duration::from_secs(7)));

    let requests = http.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|(u, r)| u.as_str() == url && r.method == "GET")
    );

    // The host's refusals, mapped to plugin errors by the SDK: a host not allowed is permanent
    // and never asked; an unreachable peer (the script has no answer left) is transient.
    let refused = misbehave(&plugin, "fetch:https://elsewhere.test/").await;
    assert!(
        matches!(&refused.error, CallError::Plugin(PluginError::Permanent(m)) if m.contains("allowed hosts")),
        "{refused:?}"
    );
    assert_eq!(
        http.requests().len(),
        2,
        "a host not allowed is never asked"
    );
    let unreachable = failure(
        plugin
            .handle_inbound(ctx, &post(vec![], format!("fetch:{url}").as_bytes()))
            .await,
    );
    assert!(
        matches!(&unreachable.error, CallError::Plugin(PluginError::Transient(m)) if m.contains("unreachable")),
        "{unreachable:?}"
    );
    assert_eq!(unreachable.retry_after, None);

    let always = failure(
        plugin
            .push_fulfillment(context(&[], &[], &[]), &fulfillment_request())
            .await,
    );
    assert!(
        matches!(&always.error, CallError::Plugin(PluginError::Transient(m)) if m == "always"),
        "{always:?}"
    );
    assert_still_works(&plugin).await;
}

/// Runs one normal call on a task of its own and returns how long its caller waited.
async fn timed_normal_call(plugin: &Arc<LoadedPlugin>) -> Duration {
    let plugin = plugin.clone();
    let started = Instant::now();
    tokio::spawn(async move { assert_still_works(&plugin).await })
        .await
        .expect("the normal call's task");
    started.elapsed()
}

/// As many looping calls as the runtime has worker threads: a plugin that held its thread while
/// it spins would leave no thread for anything else until its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_calls_do_not_hold_up_other_calls() {
    const LOOP_DEADLINE: Duration = Duration::from_secs(3);
    let (engine, _http) = engine_with(limits(LOOP_DEADLINE, SMALL_MEMORY));
    let plugin = Arc::new(load(&engine, test_plugin("misbehaving")));

    timed_normal_call(&plugin).await;
    let mut usual = Duration::ZERO;
    for _ in 0..5 {
        usual = usual.max(timed_normal_call(&plugin).await);
    }

    let loops: Vec<_> = (0..2)
        .map(|_| {
            let plugin = plugin.clone();
            tokio::spawn(async move { misbehave(&plugin, "loop").await })
        })
        .collect();
    // Let the loops start spinning on the workers; the runtime's timers must keep firing too.
    let napping = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let nap = napping.elapsed();
    let mut during = Duration::ZERO;
    for _ in 0..5 {
        during = during.max(timed_normal_call(&plugin).await);
    }
    let loops_still_running = loops.iter().all(|l| !l.is_finished());
    eprintln!(
        "normal call: slowest {usual:?} alone, {during:?} while two calls loop; a 100 ms sleep took {nap:?}"
    );
    assert!(
        nap < Duration::from_millis(400),
        "a 100 ms sleep took {nap:?} while other calls looped"
    );
    assert!(
        loops_still_running,
        "the normal calls must be measured while the loops run (a 100 ms sleep took {nap:?})"
    );
    assert!(
        during < Duration::from_millis(300),
        "a normal call took {during:?} while other calls looped (alone: {usual:?})"
    );
    for handle in loops {
        let stopped = handle.await.expect("the loop's task");
        assert!(
            matches!(stopped.error, CallError::Deadline(_)),
            "{stopped:?}"
        );
    }
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk_and_reused() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("plugin-cache-{}", std::process::id()));
    // Left over from an earlier run that failed: the first load must compile.
    let _ = std::fs::remove_dir_all(&dir);
    let config = EngineConfig {
        cache_dir: Some(dir.clone()),
        ..EngineConfig::default()
    };
    let shopify = bundled("shopify");

    let (first_engine, _http) = engine_with(config.clone());
    let started = Instant::now();
    let first = load(&first_engine, shopify);
    let compiled_in = started.elapsed();

    let cached: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the cache directory was created")
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    let file = &cached[0];
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    assert!(
        name.starts_with(first.digest()) && name.ends_with(".cwasm"),
        "{name}"
    );
    let written = std::fs::metadata(file)
        .and_then(|m| m.modified())
        .expect("mtime");

    // A second engine (a restart) loads the same bytes from the file.
    let (second_engine, _http) = engine_with(config);
    let started = Instant::now();
    let second = load(&second_engine, shopify);
    let loaded_in = started.elapsed();
    eprintln!("shopify component: compiled in {compiled_in:?}, loaded from cache in {loaded_in:?}");
    assert_eq!(second.digest(), first.digest());
    assert_eq!(
        std::fs::metadata(file)
            .and_then(|m| m.modified())
            .expect("mtime"),
        written,
        "the cached file was not rewritten"
    );
    assert!(
        loaded_in < compiled_in,
        "loading from the cache ({loaded_in:?}) was not faster than compiling ({compiled_in:?})"
    );

    // The machine code read back runs.
    let inbound = second
        .handle_inbound(
            shopify_inbound_context(),
            &shopify_delivery(WEBHOOK_SECRET, ORDERS_CREATE),
        )
        .await
        .expect("the cached component parses the sample order");
    assert_sample_order(&inbound);

    let _ = std::fs::remove_dir_all(&dir);
}

/// A real component keeps every byte through `strip` and `pack`: the package of a bundled
/// plugin is its component with the manifest appended, and comes back identical.
#[test]
fn packages_round_trip_through_strip_and_pack() {
    use daifa_plugin_host::manifest::{Package, pack, strip};
    for plugin in daifa_bundled_plugins::PLUGINS {
        let package = Package::read(plugin.wasm).expect("a bundled plugin is a package");
        assert_eq!(package.manifest.name, plugin.name);
        let component = strip(plugin.wasm).expect("strips");
        assert!(component.len() < plugin.wasm.len());
        assert!(Package::read(&component).is_err(), "the manifest is gone");
        assert_eq!(
            pack(&component, &package.manifest_toml).expect("packs"),
            plugin.wasm,
            "{} changed in the round trip",
            plugin.name
        );
    }
}

/// Warm-instance reuse: an instance serves its connection's next calls (the plugin's counter goes
/// on), never another connection's, and is dropped after `reuse_calls` calls, after a trap or a
/// deadline, and when evicted (an upgrade).
#[tokio::test]
async fn warm_instances_serve_one_connection_and_are_recycled() {
    let (engine, _http) = engine_with(limits(DEADLINE, SMALL_MEMORY));
    let plugin = engine
        .load_spec(
            daifa_plugin_host::PluginSpec {
                name: "misbehaving".into(),
                version: "test".into(),
                kind: PluginKind::Channel,
                limits: engine.config().limits.clone(),
                reuse_calls: 3,
            },
            test_plugin("misbehaving").wasm,
        )
        .expect("loads");
    let shop = |name: &str| {
        Arc::new(ConnectionContext {
            plugin: "misbehaving".into(),
            connection: name.into(),
            ..ConnectionContext::default()
        })
    };
    let count = |ctx: Arc<ConnectionContext>| {
        let plugin = &plugin;
        async move {
            plugin
                .handle_inbound(ctx, &post(vec![], b"count"))
                .await
                .expect("count")
                .topic
                .expect("a topic")
        }
    };
    let (a, b) = (shop("shop-a"), shop("shop-b"));
    assert_eq!(count(a.clone()).await, "1");
    assert_eq!(plugin.warm_instances("shop-a"), 1);
    assert_eq!(
        count(a.clone()).await,
        "2",
        "the same instance served the second call"
    );
    assert_eq!(
        count(b.clone()).await,
        "1",
        "shop-b never gets shop-a's instance"
    );
    assert_eq!(count(a.clone()).await, "3");
    assert_eq!(plugin.warm_instances("shop-a"), 0, "recycled after 3 calls");
    assert_eq!(count(a.clone()).await, "1", "a fresh instance");

    // A trap drops the instance it happened in.
    assert_trap(
        &failure(
            plugin
                .handle_inbound(a.clone(), &post(vec![], b"panic"))
                .await,
        ),
        "panic",
    );
    assert_eq!(plugin.warm_instances("shop-a"), 0);
    assert_eq!(count(a.clone()).await, "1");

    // So does a deadline.
    let late = plugin
        .handle_inbound(a.clone(), &post(vec![], b"loop"))
        .await;
    assert!(matches!(
        late.map_err(|f| f.error),
        Err(CallError::Deadline(_))
    ));
    assert_eq!(count(a.clone()).await, "1");

    // And an eviction (the connection moved to another version).
    assert_eq!(count(a.clone()).await, "2");
    plugin.evict("shop-a");
    assert_eq!(plugin.warm_instances("shop-a"), 0);
    assert_eq!(count(a.clone()).await, "1");
    assert_eq!(count(b).await, "2", "shop-b kept its own");
}

#[test]
fn rust_components_are_compiled_toolchains() {
    use daifa_plugin_host::manifest::{Toolchain, toolchain};
    for plugin in daifa_bundled_plugins::PLUGINS {
        assert_eq!(
            toolchain(plugin.wasm),
            Toolchain::Compiled,
            "{}",
            plugin.name
        );
    }
}

/// The legacy plugin's component loaded as `kind` (it exports all three interfaces of 0.4).
fn legacy_as(engine: &PluginEngine, kind: PluginKind) -> LoadedPlugin {
    let plugin = test_plugin("legacy");
    engine
        .load(plugin.name, kind, plugin.wasm)
        .expect("loading the 0.4 component")
}

/// The message of an `unsupported` plugin error.
fn unsupported(failure: CallFailure) -> String {
    match failure.error {
        CallError::Plugin(PluginError::Unsupported(message)) => message,
        other => panic!("expected unsupported, got {other:?}"),
    }
}

/// The WIT versioning policy: a plugin built against 0.4.0, the previous minor version, still
/// loads and works, host imports included, after the package moved to 0.5.0 (the storefront's
/// `cancel-order`): every storefront function of 0.4 goes through the converted bindings, and
/// `cancel-order` answers `unsupported` without calling it; current plugins are on the 0.5 line.
#[tokio::test]
async fn a_plugin_built_against_the_previous_minor_wit_still_loads_and_works() {
    let (engine, http) = engine_with(limits(DEADLINE, SMALL_MEMORY));
    let legacy = load(&engine, test_plugin("legacy"));
    assert_eq!(legacy.wit_line(), "0.4");
    let ctx = context(
        &[
            ("prefix", "old:"),
            ("url", &format!("https://{PEER_HOST}/ping")),
        ],
        &[],
        &[PEER_HOST],
    );
    let inbound = legacy
        .handle_inbound(ctx.clone(), &post(vec![], b"hello"))
        .await
        .expect("a 0.4 plugin parses");
    assert_eq!(inbound.topic.as_deref(), Some("old:hello"));
    assert_eq!(inbound.delivery_id.as_deref(), Some("legacy-true"));
    assert!(inbound.events.is_empty());

    http.respond(OutboundResponse {
        status: 204,
        headers: vec![],
        body: vec![],
    });
    let request = FulfillmentRequest {
        order_external_id: "1".into(),
        shipment_id: "shp_1".into(),
        shipment: Shipment {
            lines: vec![LineQuantity {
                external_line_id: "l1".into(),
                quantity: 1,
            }],
            carrier_code: "UPS".into(),
            tracking_number: "1Z".into(),
            tracking_url: None,
            shipped_at: 0,
        },
        notify_customer: false,
    };
    let reference = legacy
        .push_fulfillment(ctx.clone(), &request)
        .await
        .expect("its outbound request went through the converted host import");
    assert_eq!(reference.external_id, "shp_1:204");
    assert_eq!(
        http.requests()[0].0.as_str(),
        format!("https://{PEER_HOST}/ping")
    );

    assert_eq!(
        legacy
            .check_connection(ctx.clone())
            .await
            .expect("0.4 has check-connection"),
        "legacy channel, prefix \"old:\""
    );

    // Added in 0.3.0, so a 0.4 plugin answers them; the cursor comes from the `prefix` setting
    // (the `config` host import).
    let poll = |cursor: Option<&str>| PollRequest {
        cursor: cursor.map(Into::into),
        since: 0,
    };
    let first = legacy
        .poll_channel(ctx.clone(), &poll(None))
        .await
        .expect("0.4 has poll");
    assert_eq!(first.next_cursor.as_deref(), Some("old:0"));
    assert!(first.events.is_empty() && !first.more);
    let next = legacy
        .poll_channel(ctx.clone(), &poll(Some("old:41")))
        .await
        .expect("0.4 has poll");
    assert_eq!(next.next_cursor.as_deref(), Some("old:42"));

    let refund = legacy
        .refund(
            ctx.clone(),
            &RefundRequest {
                order_external_id: "1".into(),
                case_id: "case_1".into(),
                amount: Money {
                    amount_minor: 250,
                    currency: "EUR".into(),
                },
                lines: vec![],
                reason: Some("scratched".into()),
                notify_customer: true,
            },
        )
        .await
        .expect("0.4 has refund");
    assert_eq!(refund.external_id, "refund-case_1-250");

    let decision = |approved| ReturnDecision {
        order_external_id: "1".into(),
        case_id: "case_2".into(),
        external_id: None,
        approved,
        note: None,
    };
    legacy
        .decide_return(ctx.clone(), &decision(true))
        .await
        .expect("0.4 has decide-return");
    // A 0.4 plugin error arrives as the same current error.
    let declined = legacy
        .decide_return(ctx.clone(), &decision(false))
        .await
        .expect_err("the legacy plugin fails declined returns");
    assert!(
        matches!(&declined.error, CallError::Plugin(PluginError::Permanent(m)) if m == "declined case_2"),
        "{declined:?}"
    );

    // Added in 0.5.0: the 0.4 plugin is not called, and the operator is told to rebuild it.
    let cancel = CancelOrderRequest {
        order_external_id: "1".into(),
        idempotency_key: "ord_1.storefront_cancel".into(),
        reason: CancelReason::Inventory,
        staff_note: None,
        refund: true,
        restock: true,
        notify_customer: true,
    };
    let message = unsupported(
        legacy
            .cancel_storefront_order(ctx, &cancel)
            .await
            .expect_err("0.4 has no cancel-order"),
    );
    assert!(
        message.contains("cancel-order")
            && message.contains("0.5.0")
            && message.contains("WIT 0.4"),
        "{message}"
    );

    // A current plugin is on the 0.5 line and answers the same functions, and cancel-order.
    let current = load(&engine, test_plugin("misbehaving"));
    assert_eq!(current.wit_line(), "0.5");
    let polled = current
        .poll_channel(context(&[], &[], &[]), &poll(Some("41")))
        .await
        .expect("0.5 plugin polls");
    assert_eq!(polled.next_cursor.as_deref(), Some("42"));
    let cancelled = current
        .cancel_storefront_order(context(&[("cancel", "job-7")], &[], &[]), &cancel)
        .await
        .expect("0.5 plugin cancels");
    assert_eq!(cancelled.reference.as_deref(), Some("job-7"));
    assert!(!cancelled.already_cancelled);
}

/// An order from a 0.4 storefront plugin keeps the payment status and update time 0.4.0 added
/// through the conversion.
#[tokio::test]
async fn an_order_from_a_0_4_plugin_arrives_with_its_payment_and_update_time() {
    let (engine, _http) = engine_with(limits(DEADLINE, SMALL_MEMORY));
    let legacy = load(&engine, test_plugin("legacy"));
    let inbound = legacy
        .handle_inbound(context(&[], &[], &[]), &post(vec![], b"order:1001"))
        .await
        .expect("a 0.4 plugin's order");
    let [ChannelEvent::OrderPlaced(order)] = inbound.events.as_slice() else {
        panic!("one order-placed event: {:?}", inbound.events)
    };
    assert_eq!(order.payment, Some(PaymentStatus::Paid));
    assert_eq!(order.updated_at, Some(1_700_000_000_000));
    assert_eq!(order.external_id, "1001");
    assert_eq!(order.order_number.as_deref(), Some("#1001"));
    assert_eq!(order.customer.name.as_deref(), Some("Legacy Buyer"));
    assert_eq!(order.total.amount_minor, 1000);
    assert!(order.placed_at > 0, "now-ms through the 0.4 host import");
}

fn supplier_order() -> SupplierOrder {
    let eur = |amount_minor| Money {
        amount_minor,
        currency: "EUR".into(),
    };
    SupplierOrder {
        supplier_order_id: "so_1".into(),
        idempotency_key: "so_1.submit".into(),
        order_external_id: "1001".into(),
        order_number: Some("#1001".into()),
        storefront: "test".into(),
        placed_at: 1_700_000_000_000,
        currency: "EUR".into(),
        buyer_note: Some("blue, please".into()),
        ship_to: Address {
            name: Some("Ada".into()),
            company: None,
            line1: "1 Main St".into(),
            line2: None,
            city: "Lyon".into(),
            province: None,
            province_code: None,
            postal_code: Some("69001".into()),
            country_code: "FR".into(),
            phone: None,
        },
        customer: Contact {
            name: Some("Ada".into()),
            email: None,
            phone: None,
        },
        lines: vec![SupplierOrderLine {
            external_line_id: "l1".into(),
            storefront_sku: "MUG".into(),
            supplier_sku: "S-MUG".into(),
            title: "Mug".into(),
            variant_title: None,
            quantity: 1,
            unit_price: eur(1000),
            note: None,
        }],
        declared_value: Some(eur(800)),
        avoid_carriers: Some(vec!["slow-post".into()]),
        reship_of: None,
    }
}

fn order_ref() -> SupplierOrderRef {
    SupplierOrderRef {
        supplier_order_id: "so_1".into(),
        external_id: Some("legacy-so_1".into()),
    }
}

/// A 0.4 supplier plugin: its functions are called through the converted bindings, the
/// `update-order` 0.4.0 added included.
#[tokio::test]
async fn a_supplier_plugin_of_the_previous_minor_wit_works() {
    let (engine, _http) = engine_with(limits(DEADLINE, SMALL_MEMORY));
    let legacy = legacy_as(&engine, PluginKind::Supplier);
    assert_eq!(legacy.wit_line(), "0.4");
    let ctx = context(&[("prefix", "s:")], &[], &[]);

    let submission = legacy
        .submit_order(ctx.clone(), &supplier_order())
        .await
        .expect("0.4 has submit-order");
    assert_eq!(submission.external_id.as_deref(), Some("legacy-so_1"));
    assert_eq!(submission.status, SupplierOrderStatus::Accepted);

    let callback = legacy
        .handle_callback(ctx.clone(), &post(vec![], b"so_1"))
        .await
        .expect("0.4 has handle-callback");
    assert_eq!(
        callback.events,
        [SupplierEvent::Accepted(SupplierOrderRef {
            supplier_order_id: "so_1".into(),
            external_id: None,
        })]
    );

    assert_eq!(
        legacy.check_connection(ctx.clone()).await.expect("0.4"),
        "legacy supplier, prefix \"s:\""
    );
    let polled = legacy
        .poll_supplier(
            ctx.clone(),
            &PollRequest {
                cursor: Some("s:6".into()),
                since: 0,
            },
        )
        .await
        .expect("0.4 has poll");
    assert_eq!(polled.next_cursor.as_deref(), Some("s:7"));

    let cancel = |reason: Option<&str>| CancelRequest {
        order: order_ref(),
        idempotency_key: "so_1.cancel".into(),
        reason: reason.map(Into::into),
    };
    assert_eq!(
        legacy
            .cancel_order(ctx.clone(), &cancel(None))
            .await
            .expect("0.4"),
        SupplierOrderStatus::CancellationAccepted
    );
    assert_eq!(
        legacy
            .cancel_order(ctx.clone(), &cancel(Some("changed mind")))
            .await
            .expect("0.4"),
        SupplierOrderStatus::CancellationRejected
    );

    let authorization = legacy
        .authorize_return(
            ctx.clone(),
            &ReturnRequest {
                order: order_ref(),
                case_id: "case_9".into(),
                idempotency_key: "case_9.return".into(),
                kind: CaseKind::ReturnRefund,
                return_kind: ReturnKind::CustomerReturn,
                reason: Some(CaseReason::Damaged),
                note: None,
                lines: vec![LineQuantity {
                    external_line_id: "l1".into(),
                    quantity: 1,
                }],
            },
        )
        .await
        .expect("0.4 has authorize-return");
    assert_eq!(authorization.rma.as_deref(), Some("rma-case_9"));

    let update = |changes: &[&str]| UpdateRequest {
        order: order_ref(),
        idempotency_key: "so_1.update.1".into(),
        updated: supplier_order(),
        changes: changes.iter().map(|c| c.to_string()).collect(),
    };
    assert_eq!(
        legacy
            .update_order(ctx.clone(), &update(&["ship-to"]))
            .await
            .expect("0.4 has update-order"),
        UpdateAnswer::Requested
    );
    assert_eq!(
        legacy
            .update_order(ctx, &update(&["lines"]))
            .await
            .expect("0.4 has update-order"),
        UpdateAnswer::Applied
    );

    // Loaded as a storefront, the same component is no supplier: the kind is said first.
    let channel = load(&engine, test_plugin("legacy"));
    let message = unsupported(
        channel
            .submit_order(context(&[], &[], &[]), &supplier_order())
            .await
            .expect_err("not a supplier"),
    );
    assert!(message.contains("not a supplier plugin"), "{message}");
}

/// A 0.4 carrier plugin: every function goes through the converted bindings, a list of parcels
/// included.
#[tokio::test]
async fn a_carrier_plugin_of_the_previous_minor_wit_works() {
    let (engine, _http) = engine_with(limits(DEADLINE, SMALL_MEMORY));
    let legacy = legacy_as(&engine, PluginKind::Carrier);
    assert_eq!(legacy.wit_line(), "0.4");
    let ctx = context(&[("prefix", "c:")], &[], &[]);
    let parcel = |number: &str| Parcel {
        shipment_id: format!("shp_{number}"),
        carrier_code: "UPS".into(),
        tracking_number: number.into(),
        destination_country: Some("FR".into()),
        shipped_at: 1_700_000_000_000,
    };

    let registration = legacy
        .register_parcel(ctx.clone(), &parcel("1Z1"))
        .await
        .expect("0.4 has register");
    assert_eq!(registration.carrier_code.as_deref(), Some("UPS"));
    assert_eq!(registration.external_id.as_deref(), Some("legacy-1Z1"));

    let updates = legacy
        .fetch_tracking(ctx.clone(), &[parcel("1Z1"), parcel("1Z2")])
        .await
        .expect("0.4 has fetch-tracking");
    let numbers: Vec<_> = updates.iter().map(|u| u.tracking_number.as_str()).collect();
    assert_eq!(numbers, ["1Z1", "1Z2"]);
    assert!(
        updates
            .iter()
            .all(|u| u.status == TrackingStatus::InTransit)
    );

    let inbound = legacy
        .handle_webhook(ctx.clone(), &post(vec![], b"TRACKING_UPDATED"))
        .await
        .expect("0.4 has handle-webhook");
    assert_eq!(inbound.topic.as_deref(), Some("TRACKING_UPDATED"));
    assert!(inbound.updates.is_empty());

    assert_eq!(
        legacy.check_connection(ctx).await.expect("0.4"),
        "legacy carrier, prefix \"c:\""
    );
}
