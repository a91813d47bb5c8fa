//! `daifa demo`: the gateway with a demo set-up, and two demo peers on this machine so an order
//! can be watched travelling end to end without any account anywhere:
//!
//! - the connection `demo-shopify` (Shopify plugin, webhook secret `demo-secret`), whose Admin API
//!   is a demo storefront on `127.0.0.1:{storefront_port}` that knows the published sample order
//!   and records the fulfillments written back;
//! - the connection `demo-supplier` (webhook-supplier plugin), a demo supplier on
//!   `127.0.0.1:{supplier_port}` that verifies each pushed order's signature, acknowledges it,
//!   and ships it two seconds later (calling back with a tracking number);
//! - the SKU of the sample order (`IPOD2008PINK`) mapped to the demo supplier.
//!
//! After-sales work too: the demo supplier cancels what it is asked to, authorizes returns and
//! reports them received and inspected; the demo storefront takes refunds and cancellations.
//!
//! The peers are a demo, not a test double: the tests use their own fakes in `tests/`.

use crate::app::Application;
use crate::catalogue::OfferInput;
use crate::config::Settings;
use crate::connections::{self, NewConnection};
use crate::services::Services;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const SHOPIFY_WEBHOOK_SECRET: &str = "demo-secret";
const SHOPIFY_TOKEN: &str = "demo-access-token";
const SUPPLIER_SECRET: &str = "whsec_ZGFpZmEtZGVtby1zdXBwbGllci1zZWNyZXQ=";
const SAMPLE_ORDER: &str =
    include_str!("../../tests/fixtures/shopify/webhook-orders-create.paid.json");

pub async fn run(
    mut settings: Settings,
    supplier_port: u16,
    storefront_port: u16,
) -> anyhow::Result<()> {
    if settings.database_url == "sqlite://daifa.db?mode=rwc" {
        settings.database_url = "sqlite://daifa-demo.db?mode=rwc".into();
    }
    let app = Application::build(settings).await?;
    let gateway = format!("http://{}", app.local_addr());
    set_up(app.state(), supplier_port, storefront_port).await?;
    serve_peer(storefront_port, demo_storefront()).await?;
    serve_peer(
        supplier_port,
        demo_supplier(format!("{gateway}/hooks/demo-supplier")),
    )
    .await?;
    tracing::info!(
        gateway = %gateway,
        "demo ready: send the sample order (see README), then GET {gateway}/api/v1/orders"
    );
    app.run_until_stopped().await
}

async fn set_up(state: &Services, supplier_port: u16, storefront_port: u16) -> anyhow::Result<()> {
    let connections = [
        NewConnection {
            name: "demo-shopify".into(),
            plugin: "shopify".into(),
            plugin_version: None,
            settings: BTreeMap::from([
                ("shop_domain".into(), "daifa-demo.myshopify.com".into()),
                (
                    "admin_base_url".into(),
                    format!("http://127.0.0.1:{storefront_port}"),
                ),
            ]),
            secrets: BTreeMap::from([
                ("webhook_secret".into(), SHOPIFY_WEBHOOK_SECRET.into()),
                ("access_token".into(), SHOPIFY_TOKEN.into()),
            ]),
            allowed_hosts: vec![format!("127.0.0.1:{storefront_port}")],
            allow_private_network: true,
        },
        NewConnection {
            name: "demo-supplier".into(),
            plugin: "webhook-supplier".into(),
            plugin_version: None,
            settings: BTreeMap::from([(
                "url".into(),
                format!("http://127.0.0.1:{supplier_port}/orders"),
            )]),
            secrets: BTreeMap::from([("signing_secret".into(), SUPPLIER_SECRET.into())]),
            allowed_hosts: vec![format!("127.0.0.1:{supplier_port}")],
            allow_private_network: true,
        },
    ];
    for c in connections {
        if crate::store::connections::by_name(&state.db, &c.name)
            .await?
            .is_none()
        {
            connections::create(state, c)
                .await
                .map_err(|e| anyhow::anyhow!("creating a demo connection: {e}"))?;
        }
    }
    let mut offer = OfferInput::new(
        "demo-shopify",
        "IPOD2008PINK",
        "demo-supplier",
        "DEMO-IPOD-NANO-PINK",
    );
    offer.unit_cost_minor = Some(9800);
    offer.currency = Some("USD".into());
    offer.stock = Some(500);
    offer.lead_time_days = Some(2);
    offer.weight_grams = Some(180);
    crate::catalogue::create(&state.db, offer)
        .await
        .map(drop)
        .map_err(|e| anyhow::anyhow!("creating the demo offer: {e}"))
}

async fn serve_peer(port: u16, router: axum::Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(())
}

// ---- the demo supplier ----

#[derive(Clone)]
struct Supplier {
    callback_url: String,
    received: Arc<AtomicUsize>,
}

fn demo_supplier(callback_url: String) -> axum::Router {
    let state = Supplier {
        callback_url,
        received: Arc::new(AtomicUsize::new(0)),
    };
    axum::Router::new()
        .route("/orders", post(supplier_receive))
        .with_state(state)
}

async fn supplier_receive(
    State(s): State<Supplier>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let Ok(webhook) = standardwebhooks::Webhook::new(SUPPLIER_SECRET) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": "demo secret" })),
        );
    };
    if let Err(e) = webhook.verify(&body, &headers) {
        tracing::warn!(error = %e, "demo supplier: refused an order with a bad signature");
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": e.to_string() })),
        );
    }
    let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let data = message["data"].clone();
    let n = s.received.fetch_add(1, Ordering::SeqCst) + 1;
    // After-sales (protocol 1.2): a cancellation is always in time at the demo supplier; a
    // return is authorized, then received and inspected (as new) a few seconds later.
    match message["type"].as_str() {
        Some("order.cancel_requested") => {
            tracing::info!(supplier_order_id = %data["supplier_order_id"], "demo supplier: order cancelled (or its parcel stopped)");
            return (StatusCode::OK, Json(json!({ "status": "cancelled" })));
        }
        Some("return.requested") => {
            tracing::info!(supplier_order_id = %data["supplier_order_id"], case_id = %data["case_id"],
                "demo supplier: return authorized, receiving it in 2 s");
            tokio::spawn(receive_return_later(s.callback_url.clone(), data));
            return (
                StatusCode::OK,
                Json(
                    json!({ "rma": format!("DEMO-RMA-{n}"), "note": "write the RMA on the parcel",
                    "address": { "name": "Returns desk", "company": "Daifa Demo Supplier", "line1": "88 Futian Road",
                                 "line2": null, "city": "Yiwu", "province": "Zhejiang", "province_code": "ZJ",
                                 "postal_code": "322000", "country_code": "CN", "phone": null } }),
                ),
            );
        }
        _ => {}
    }
    let external_id = format!("DEMO-{n}");
    tracing::info!(
        supplier_order_id = %data["supplier_order_id"], lines = data["lines"].as_array().map_or(0, Vec::len),
        buyer_note = %data["buyer_note"], "demo supplier: order received, shipping it in 2 s"
    );
    tokio::spawn(ship_later(
        s.callback_url.clone(),
        data,
        external_id.clone(),
    ));
    (
        StatusCode::ACCEPTED,
        Json(json!({ "external_id": external_id, "status": "submitted" })),
    )
}

async fn ship_later(callback_url: String, data: Value, external_id: String) {
    let so = data["supplier_order_id"].clone();
    let now = || time_now_rfc3339();
    let accepted = json!({ "type": "supplier_order.accepted", "timestamp": now(), "data": { "supplier_order_id": so, "external_id": external_id } });
    tokio::time::sleep(Duration::from_secs(1)).await;
    call_back(&callback_url, &accepted).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lines: Vec<Value> = data["lines"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| json!({ "line_id": l["line_id"], "quantity": l["quantity"] }))
                .collect()
        })
        .unwrap_or_default();
    let tracking = format!(
        "DEMO{}",
        uuid::Uuid::now_v7().simple().to_string()[20..].to_ascii_uppercase()
    );
    let shipped = json!({ "type": "supplier_order.shipped", "timestamp": now(), "data": {
        "supplier_order_id": so, "external_id": external_id,
        "shipment": { "carrier": "YunExpress", "tracking_number": tracking, "tracking_url": null, "shipped_at": now(), "lines": lines } } });
    call_back(&callback_url, &shipped).await;
}

async fn receive_return_later(callback_url: String, data: Value) {
    let now = time_now_rfc3339;
    let report = json!({ "supplier_order_id": data["supplier_order_id"], "case_id": data["case_id"], "lines": data["lines"] });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut received = report.clone();
    received["received_at"] = json!(now());
    call_back(
        &callback_url,
        &json!({ "type": "return.received", "timestamp": now(), "data": received }),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut inspected = report;
    inspected["resellable"] = json!(true);
    call_back(
        &callback_url,
        &json!({ "type": "return.inspected", "timestamp": now(), "data": inspected }),
    )
    .await;
}

async fn call_back(url: &str, message: &Value) {
    let body = message.to_string();
    let id = crate::db::new_id("msg");
    let ts = crate::db::now_ms() / 1000;
    let Ok(signature) = standardwebhooks::Webhook::new(SUPPLIER_SECRET)
        .and_then(|w| w.sign(&id, ts, body.as_bytes()))
    else {
        return;
    };
    let result = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    match result {
        Ok(r) => {
            tracing::info!(kind = %message["type"], status = r.status().as_u16(), "demo supplier: called back")
        }
        Err(e) => tracing::warn!(error = %e, "demo supplier: callback failed"),
    }
}

fn time_now_rfc3339() -> String {
    let secs = crate::db::now_ms() / 1000;
    httpdate_free_rfc3339(secs)
}

/// RFC 3339 in UTC from Unix seconds (civil-from-days, Howard Hinnant's algorithm).
fn httpdate_free_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---- the demo storefront (Shopify Admin GraphQL, the calls the plugin makes) ----

#[derive(Clone, Default)]
struct Storefront {
    remaining: Arc<Mutex<Option<BTreeMap<String, i64>>>>,
    fulfillments: Arc<Mutex<Vec<(String, String)>>>,
    /// Refunds made: (id, note, amount as Shopify writes it).
    refunds: Arc<Mutex<Vec<(String, String, String)>>>,
    /// When the shop cancelled the order (`orderCancel`).
    cancelled_at: Arc<Mutex<Option<String>>>,
}

fn demo_storefront() -> axum::Router {
    axum::Router::new()
        .route(
            "/admin/api/{version}/graphql.json",
            post(storefront_graphql),
        )
        .with_state(Storefront::default())
}

async fn storefront_graphql(
    State(s): State<Storefront>,
    Json(request): Json<Value>,
) -> Json<Value> {
    let sample: Value = serde_json::from_str(SAMPLE_ORDER).unwrap_or(Value::Null);
    let order_id = sample["id"].to_string();
    let query = request["query"].as_str().unwrap_or_default();
    let mut remaining_guard = s.remaining.lock().unwrap_or_else(|p| p.into_inner());
    let remaining = remaining_guard.get_or_insert_with(|| {
        sample["line_items"]
            .as_array()
            .map(|ls| {
                ls.iter()
                    .map(|l| (l["id"].to_string(), l["quantity"].as_i64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    });
    if query.contains("shop {") {
        return Json(
            json!({ "data": { "shop": { "name": "Daifa Demo", "myshopifyDomain": "daifa-demo.myshopify.com" } } }),
        );
    }
    let currency = sample["currency"].as_str().unwrap_or("USD").to_string();
    if query.contains("refundCreate") {
        let input = &request["variables"]["input"];
        let amount: f64 = input["transactions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["amount"].as_str()?.parse::<f64>().ok())
            .sum();
        let mut refunds = s.refunds.lock().unwrap_or_else(|p| p.into_inner());
        let id = format!("gid://shopify/Refund/{}", 2000 + refunds.len());
        let note = input["note"].as_str().unwrap_or_default().to_string();
        let amount = format!("{amount:.2}");
        tracing::info!(refund = %id, %amount, %currency, %note, "demo storefront: refunded, the buyer would get an e-mail now");
        refunds.push((id.clone(), note.clone(), amount.clone()));
        return Json(json!({ "data": { "refundCreate": {
            "refund": { "id": id, "note": note, "totalRefundedSet": { "presentmentMoney": { "amount": amount, "currencyCode": currency } } },
            "userErrors": [] } } }));
    }
    if query.contains("transactions(") {
        // What a refund reads first: the order's payment and the refunds it has.
        let refunds = s.refunds.lock().unwrap_or_else(|p| p.into_inner());
        let sale = format!("gid://shopify/OrderTransaction/{order_id}1");
        let money = |amount: &str| json!({ "presentmentMoney": { "amount": amount, "currencyCode": currency } });
        let mut transactions = vec![
            json!({ "id": sale, "kind": "SALE", "status": "SUCCESS", "gateway": "bogus",
            "parentTransaction": null, "amountSet": money(sample["total_price"].as_str().unwrap_or("0")) }),
        ];
        transactions.extend(refunds.iter().enumerate().map(|(i, (_, _, amount))| json!({
            "id": format!("gid://shopify/OrderTransaction/{order_id}2{i}"), "kind": "REFUND", "status": "SUCCESS",
            "gateway": "bogus", "parentTransaction": { "id": sale }, "amountSet": money(amount) })));
        return Json(json!({ "data": { "order": {
            "id": format!("gid://shopify/Order/{order_id}"), "currencyCode": currency, "presentmentCurrencyCode": currency,
            "refunds": refunds.iter().map(|(id, note, _)| json!({ "id": id, "note": note })).collect::<Vec<_>>(),
            "transactions": transactions } } }));
    }
    if query.contains("orderCancel(") {
        let mut cancelled_at = s.cancelled_at.lock().unwrap_or_else(|p| p.into_inner());
        if cancelled_at.is_some() {
            return Json(
                json!({ "data": { "orderCancel": { "job": null, "orderCancelUserErrors": [
                { "code": "INVALID", "field": ["orderId"], "message": "Order has already been cancelled" } ] } } }),
            );
        }
        let variables = &request["variables"];
        tracing::info!(reason = %variables["reason"], refund = %variables["refundMethod"], "demo storefront: order cancelled, the buyer would get an e-mail now");
        *cancelled_at = Some(
            humantime_serde::re::humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string(),
        );
        return Json(json!({ "data": { "orderCancel": {
            "job": { "id": "gid://shopify/Job/demo-cancel", "done": false }, "orderCancelUserErrors": [] } } }));
    }
    if query.contains("fulfillmentCreate") {
        let input = &request["variables"]["fulfillment"];
        for group in input["lineItemsByFulfillmentOrder"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            for item in group["fulfillmentOrderLineItems"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let id = item["id"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if let Some(r) = remaining.get_mut(&id) {
                    *r -= item["quantity"].as_i64().unwrap_or(0);
                }
            }
        }
        let mut fulfillments = s.fulfillments.lock().unwrap_or_else(|p| p.into_inner());
        let id = format!("gid://shopify/Fulfillment/{}", 1000 + fulfillments.len());
        let tracking = input["trackingInfo"]["number"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        tracing::info!(fulfillment = %id, tracking_number = %tracking, "demo storefront: fulfillment created, the buyer would get an e-mail now");
        fulfillments.push((id.clone(), tracking));
        return Json(
            json!({ "data": { "fulfillmentCreate": { "fulfillment": { "id": id, "status": "SUCCESS" }, "userErrors": [] } } }),
        );
    }
    let asked = request["variables"]["id"].as_str().unwrap_or_default();
    if !asked.ends_with(&format!("/{order_id}")) {
        return Json(json!({ "data": { "order": null } }));
    }
    let fulfillments = s.fulfillments.lock().unwrap_or_else(|p| p.into_inner());
    let line_nodes: Vec<Value> = remaining
        .iter()
        .map(|(id, r)| json!({ "id": format!("gid://shopify/FulfillmentOrderLineItem/{id}"), "remainingQuantity": r, "lineItem": { "id": format!("gid://shopify/LineItem/{id}") } }))
        .collect();
    let cancelled_at = s
        .cancelled_at
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Json(json!({ "data": { "order": {
        "id": format!("gid://shopify/Order/{order_id}"),
        "cancelledAt": cancelled_at,
        "fulfillments": fulfillments.iter().map(|(id, n)| json!({ "id": id, "trackingInfo": [ { "number": n } ] })).collect::<Vec<_>>(),
        "fulfillmentOrders": { "pageInfo": { "hasNextPage": false }, "nodes": [ {
            "id": format!("gid://shopify/FulfillmentOrder/{order_id}"), "status": "OPEN",
            "lineItems": { "pageInfo": { "hasNextPage": false }, "nodes": line_nodes } } ] } } } }))
}
