//! Faithful fakes of the outside world, as real HTTP servers: the Shopify GraphQL Admin API and
//! a supplier implementing Daifa's signed-webhook protocol (verified with the official
//! `standardwebhooks` library, not with Daifa's code).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a fake");
    let addr = listener.local_addr().expect("fake address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

// ---------------------------------------------------------------------------------------------
// Shopify Admin API (GraphQL), the part Daifa uses: an order's fulfillment orders and
// fulfillments, and `fulfillmentCreate`.

#[derive(Default)]
struct ShopifyState {
    /// Order id → (line item id, remaining quantity) of its one open fulfillment order.
    orders: HashMap<String, Vec<(String, i64)>>,
    /// Order id → created fulfillments (id, tracking numbers).
    fulfillments: HashMap<String, Vec<(String, Vec<String>)>>,
    /// The `fulfillment` input of every successful `fulfillmentCreate`.
    created: Vec<Value>,
    requests: usize,
}

#[derive(Clone)]
pub struct FakeShopify {
    pub base_url: String,
    token: String,
    state: Arc<Mutex<ShopifyState>>,
}

impl FakeShopify {
    pub async fn start(token: &str) -> Self {
        let state = Arc::new(Mutex::new(ShopifyState::default()));
        let fake = Self {
            base_url: String::new(),
            token: token.into(),
            state,
        };
        let router = axum::Router::new()
            .route("/admin/api/{version}/graphql.json", post(shopify_graphql))
            .with_state(fake.clone());
        let addr = serve(router).await;
        Self {
            base_url: format!("http://{addr}"),
            ..fake
        }
    }

    /// Makes an order known, with its line items open for fulfillment.
    pub fn add_order(&self, order_id: &str, lines: &[(&str, i64)]) {
        let mut s = self.state.lock().unwrap();
        s.orders.insert(
            order_id.into(),
            lines.iter().map(|(id, q)| (id.to_string(), *q)).collect(),
        );
    }

    /// Adds the orders and lines of a Shopify order JSON.
    pub fn add_order_json(&self, order: &Value) {
        let id = order["id"].to_string();
        let lines: Vec<(String, i64)> = order["line_items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["id"].to_string(), l["quantity"].as_i64().unwrap()))
            .collect();
        let refs: Vec<(&str, i64)> = lines.iter().map(|(a, b)| (a.as_str(), *b)).collect();
        self.add_order(&id, &refs);
    }

    pub fn created(&self) -> Vec<Value> {
        self.state.lock().unwrap().created.clone()
    }

    /// Requests the fake answered (whatever their outcome).
    pub fn request_count(&self) -> usize {
        self.state.lock().unwrap().requests
    }
}

fn gid_tail(gid: &str) -> &str {
    gid.rsplit('/').next().unwrap_or(gid)
}

async fn shopify_graphql(
    State(fake): State<FakeShopify>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.state.lock().unwrap().requests += 1;
    if headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok())
        != Some(fake.token.as_str())
    {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)" })))
            .into_response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "errors": "invalid JSON" })),
        )
            .into_response();
    };
    let query = request["query"].as_str().unwrap_or_default();
    let variables = &request["variables"];
    let mut s = fake.state.lock().unwrap();
    if query.contains("shop {") {
        // The Admin API's `shop` object, as shopify.dev documents it.
        return Json(json!({ "data": { "shop": { "name": "Test Shop", "myshopifyDomain": "test-shop.myshopify.com" } } })).into_response();
    }
    if query.contains("fulfillmentCreate") {
        let input = &variables["fulfillment"];
        let mut user_errors = Vec::new();
        let mut order_of_request = None;
        for group in input["lineItemsByFulfillmentOrder"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let fo = group["fulfillmentOrderId"].as_str().unwrap_or_default();
            let order_id = gid_tail(fo).to_string();
            order_of_request = Some(order_id.clone());
            let Some(lines) = s.orders.get_mut(&order_id) else {
                user_errors.push(json!({ "field": ["fulfillment"], "message": format!("Fulfillment order {fo} does not exist.") }));
                continue;
            };
            for item in group["fulfillmentOrderLineItems"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let item_id = gid_tail(item["id"].as_str().unwrap_or_default()).to_string();
                let qty = item["quantity"].as_i64().unwrap_or(0);
                match lines.iter_mut().find(|(id, _)| *id == item_id) {
                    Some((_, remaining)) if *remaining >= qty && qty > 0 => *remaining -= qty,
                    _ => user_errors.push(json!({ "field": ["fulfillment"], "message": format!("Invalid fulfillment order line item quantity requested for {item_id}.") })),
                }
            }
        }
        if !user_errors.is_empty() {
            return Json(json!({ "data": { "fulfillmentCreate": { "fulfillment": null, "userErrors": user_errors } } })).into_response();
        }
        let order_id = order_of_request.unwrap_or_default();
        let fulfillment_id = format!(
            "gid://shopify/Fulfillment/{}",
            255_858_046 + s.created.len()
        );
        let tracking = input["trackingInfo"]["number"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        s.fulfillments
            .entry(order_id)
            .or_default()
            .push((fulfillment_id.clone(), vec![tracking]));
        s.created.push(input.clone());
        return Json(json!({
            "data": { "fulfillmentCreate": { "fulfillment": { "id": fulfillment_id, "status": "SUCCESS" }, "userErrors": [] } },
            "extensions": { "cost": { "requestedQueryCost": 10, "actualQueryCost": 10 } }
        }))
        .into_response();
    }
    if query.contains("order(") {
        let order_id = gid_tail(variables["id"].as_str().unwrap_or_default()).to_string();
        let Some(lines) = s.orders.get(&order_id) else {
            return Json(json!({ "data": { "order": null } })).into_response();
        };
        let line_nodes: Vec<Value> = lines
            .iter()
            .map(|(id, remaining)| {
                json!({ "id": format!("gid://shopify/FulfillmentOrderLineItem/{id}"), "remainingQuantity": remaining,
                        "lineItem": { "id": format!("gid://shopify/LineItem/{id}") } })
            })
            .collect();
        let open = lines.iter().any(|(_, r)| *r > 0);
        let fulfillments: Vec<Value> = s
            .fulfillments
            .get(&order_id)
            .map(|fs| fs.iter().map(|(id, nums)| json!({ "id": id, "trackingInfo": nums.iter().map(|n| json!({ "number": n })).collect::<Vec<_>>() })).collect())
            .unwrap_or_default();
        return Json(json!({
            "data": { "order": {
                "id": format!("gid://shopify/Order/{order_id}"),
                "fulfillments": fulfillments,
                "fulfillmentOrders": { "nodes": [ {
                    "id": format!("gid://shopify/FulfillmentOrder/{order_id}"),
                    "status": if open { "OPEN" } else { "CLOSED" },
                    "lineItems": { "nodes": line_nodes }
                } ] }
            } }
        }))
        .into_response();
    }
    Json(json!({ "errors": [ { "message": format!("fake shopify does not know this query: {query}") } ] })).into_response()
}

// ---------------------------------------------------------------------------------------------
// A supplier speaking Daifa's webhook protocol.

/// One order push as the supplier received it.
#[derive(Debug, Clone)]
pub struct ReceivedPush {
    pub webhook_id: String,
    pub signature_valid: bool,
    pub body: Value,
}

#[derive(Default)]
struct SupplierState {
    received: Vec<ReceivedPush>,
    /// Answers to give before answering 202: (status, Retry-After).
    script: Vec<(u16, Option<u64>)>,
    /// When set, every push fails with this status.
    always_fail: Option<u16>,
    /// How long to take before answering.
    delay: Duration,
}

#[derive(Clone)]
pub struct FakeSupplier {
    pub url: String,
    secret: String,
    state: Arc<Mutex<SupplierState>>,
}

impl FakeSupplier {
    pub async fn start(secret: &str) -> Self {
        let fake = Self {
            url: String::new(),
            secret: secret.into(),
            state: Arc::new(Mutex::new(SupplierState::default())),
        };
        let router = axum::Router::new()
            .route("/orders", post(supplier_receive))
            .with_state(fake.clone());
        let addr = serve(router).await;
        Self {
            url: format!("http://{addr}/orders"),
            ..fake
        }
    }

    /// The next answers, before the supplier answers normally again.
    pub fn script(&self, answers: &[(u16, Option<u64>)]) {
        self.state.lock().unwrap().script = answers.to_vec();
    }

    /// Answers every push only after `delay` (it is recorded on arrival).
    pub fn delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    pub fn always_fail(&self, status: Option<u16>) {
        self.state.lock().unwrap().always_fail = status;
    }

    pub fn received(&self) -> Vec<ReceivedPush> {
        self.state.lock().unwrap().received.clone()
    }

    /// Sends a signed callback to the gateway, as a supplier would.
    pub async fn call_back(
        &self,
        gateway_hook: &str,
        webhook_id: &str,
        message: &Value,
    ) -> reqwest::Response {
        let body = message.to_string();
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let signature = standardwebhooks::Webhook::new(&self.secret)
            .unwrap()
            .sign(webhook_id, ts, body.as_bytes())
            .unwrap();
        reqwest::Client::new()
            .post(gateway_hook)
            .header("content-type", "application/json")
            .header("webhook-id", webhook_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .expect("sending a supplier callback")
    }
}

async fn supplier_receive(
    State(fake): State<FakeSupplier>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature_valid = standardwebhooks::Webhook::new(&fake.secret)
        .unwrap()
        .verify(&body, &headers)
        .is_ok();
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let parsed = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let delay = {
        let mut s = fake.state.lock().unwrap();
        s.received.push(ReceivedPush {
            webhook_id,
            signature_valid,
            body: parsed,
        });
        s.delay
    };
    tokio::time::sleep(delay).await;
    let mut s = fake.state.lock().unwrap();
    if !signature_valid {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    if let Some(status) = s.always_fail {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    if !s.script.is_empty() {
        let (status, retry_after) = s.script.remove(0);
        let mut response =
            (StatusCode::from_u16(status).unwrap(), "scripted failure").into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
        }
        return response;
    }
    let n = s.received.len();
    (
        StatusCode::ACCEPTED,
        Json(json!({ "external_id": format!("SUP-{n}"), "status": "submitted" })),
    )
        .into_response()
}
