//! Faithful fakes of the outside world, as real HTTP servers: the Shopify GraphQL Admin API and
//! a supplier implementing Daifa's signed-webhook protocol (verified with the official
//! `standardwebhooks` library, not with Daifa's code).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
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
// fulfillments, and `fulfillmentCreate`; its transactions and refunds, and `refundCreate`; its
// `cancelledAt`, and `orderCancel`.

#[derive(Default)]
struct ShopifyState {
    /// Order id → (line item id, remaining quantity) of its one open fulfillment order.
    orders: HashMap<String, Vec<(String, i64)>>,
    /// Order id → created fulfillments (id, tracking numbers).
    fulfillments: HashMap<String, Vec<(String, Vec<String>)>>,
    /// The `fulfillment` input of every successful `fulfillmentCreate`.
    created: Vec<Value>,
    requests: usize,
    /// What the `orders` query lists: each order's REST JSON with its `updatedAt`.
    listed: Vec<(Value, String)>,
    /// The `input` of every successful `refundCreate`.
    refunds: Vec<Value>,
    /// Order id → what the customer paid (one successful sale): amount in minor units, currency.
    paid: HashMap<String, (i64, String)>,
    /// Order id → its refunds: `{id, note, amount_minor}`.
    order_refunds: HashMap<String, Vec<Value>>,
    /// Order id → the variables of the `orderCancel` that cancelled it.
    cancelled: HashMap<String, Value>,
    /// What `orderCancel` answers instead of cancelling (an `OrderCancelUserError` message).
    refuse_cancel: Option<String>,
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
        // Paid in full, in one sale: what refunds are made against.
        let total = order["total_price"]
            .as_str()
            .map_or(0, |t| minor_units(t).unwrap_or(0));
        let currency = order["currency"].as_str().unwrap_or("USD").to_string();
        self.state
            .lock()
            .unwrap()
            .paid
            .insert(id, (total, currency));
    }

    /// Lists an order (its REST JSON, as webhooks carry it) in the `orders` query, changed at
    /// `updated_at` (RFC 3339).
    pub fn list_order(&self, order: &Value, updated_at: &str) {
        let mut s = self.state.lock().unwrap();
        s.listed.retain(|(o, _)| o["id"] != order["id"]);
        s.listed.push((order.clone(), updated_at.to_string()));
    }

    /// The refunds created through `refundCreate`.
    pub fn refunds(&self) -> Vec<Value> {
        self.state.lock().unwrap().refunds.clone()
    }

    pub fn created(&self) -> Vec<Value> {
        self.state.lock().unwrap().created.clone()
    }

    /// The orders cancelled through `orderCancel`, with its variables.
    pub fn cancellations(&self) -> HashMap<String, Value> {
        self.state.lock().unwrap().cancelled.clone()
    }

    /// `orderCancel` refuses with this message from now on, as Shopify does for an order it
    /// cannot cancel (open fulfillments, a pending payment).
    pub fn refuse_cancellations(&self, message: &str) {
        self.state.lock().unwrap().refuse_cancel = Some(message.into());
    }

    /// Requests the fake answered (whatever their outcome).
    pub fn request_count(&self) -> usize {
        self.state.lock().unwrap().requests
    }
}

fn gid_tail(gid: &str) -> &str {
    gid.rsplit('/').next().unwrap_or(gid)
}

/// "388.00" (a two-decimal currency, as the fakes' orders are) in minor units.
fn minor_units(amount: &str) -> Option<i64> {
    let (whole, frac) = amount.trim().split_once('.').unwrap_or((amount.trim(), ""));
    let frac = format!("{frac:0<2}");
    if frac.len() > 2 {
        return None;
    }
    Some(whole.parse::<i64>().ok()? * 100 + frac.parse::<i64>().ok()?)
}

fn decimal(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// `refundCreate` as the Admin API answers it: the refund's transactions must be `REFUND`s of the
/// order's sale, on its gateway, within what is left of it; the refund is recorded in the order.
fn shopify_refund_create(s: &mut ShopifyState, input: &Value) -> Value {
    let order_id = gid_tail(input["orderId"].as_str().unwrap_or_default()).to_string();
    let refused = |message: String| {
        json!({ "data": { "refundCreate": {
            "refund": null, "userErrors": [ { "field": ["input"], "message": message } ]
        } } })
    };
    let Some((paid, currency)) = s.paid.get(&order_id).cloned() else {
        return refused(format!("Order {order_id} does not exist or was not paid."));
    };
    let lines = s.orders.get(&order_id).cloned().unwrap_or_default();
    for item in input["refundLineItems"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let line = gid_tail(item["lineItemId"].as_str().unwrap_or_default()).to_string();
        if !lines.iter().any(|(id, _)| *id == line) {
            return refused(format!("Line item {line} does not belong to the order."));
        }
    }
    let refunded: i64 = s.order_refunds.get(&order_id).map_or(0, |rs| {
        rs.iter()
            .map(|r| r["amount_minor"].as_i64().unwrap_or(0))
            .sum()
    });
    let mut amount = 0;
    for t in input["transactions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        if t["kind"] != "REFUND"
            || t["gateway"] != "bogus"
            || t["parentId"] != format!("gid://shopify/OrderTransaction/{order_id}1")
        {
            return refused(format!("Invalid refund transaction {t}."));
        }
        let Some(minor) = t["amount"].as_str().and_then(minor_units) else {
            return refused(format!("Invalid amount {}.", t["amount"]));
        };
        amount += minor;
    }
    if amount > paid - refunded {
        return refused(format!(
            "Refund amount {} is greater than the refundable amount {}.",
            decimal(amount),
            decimal(paid - refunded)
        ));
    }
    let id = format!("gid://shopify/Refund/{}", 828_462_718 + s.refunds.len());
    s.order_refunds
        .entry(order_id)
        .or_default()
        .push(json!({ "id": id, "note": input["note"], "amount_minor": amount }));
    s.refunds.push(input.clone());
    json!({
        "data": { "refundCreate": {
            "refund": { "id": id, "note": input["note"],
                        "totalRefundedSet": { "presentmentMoney": { "amount": decimal(amount), "currencyCode": currency } } },
            "userErrors": []
        } },
        "extensions": { "cost": { "requestedQueryCost": 10, "actualQueryCost": 10 } }
    })
}

/// An order's refunds and transactions (its sale, then a refund transaction per refund).
fn shopify_refund_state(s: &ShopifyState, order_id: &str) -> Value {
    let Some((paid, currency)) = s.paid.get(order_id) else {
        return json!({ "data": { "order": null } });
    };
    let money = |minor: i64| {
        json!({ "presentmentMoney": {
            "amount": decimal(minor), "currencyCode": currency
        } })
    };
    let sale = format!("gid://shopify/OrderTransaction/{order_id}1");
    let refunds = s.order_refunds.get(order_id).cloned().unwrap_or_default();
    let mut transactions = vec![json!({
        "id": sale, "kind": "SALE", "status": "SUCCESS", "gateway": "bogus",
        "parentTransaction": null, "amountSet": money(*paid)
    })];
    for (i, r) in refunds.iter().enumerate() {
        transactions.push(json!({
            "id": format!("gid://shopify/OrderTransaction/{order_id}2{i}"), "kind": "REFUND", "status": "SUCCESS",
            "gateway": "bogus", "parentTransaction": { "id": sale },
            "amountSet": money(r["amount_minor"].as_i64().unwrap_or(0))
        }));
    }
    json!({ "data": { "order": {
        "id": format!("gid://shopify/Order/{order_id}"),
        "currencyCode": currency, "presentmentCurrencyCode": currency,
        "refunds": refunds.iter().map(|r| json!({ "id": r["id"], "note": r["note"] })).collect::<Vec<_>>(),
        "transactions": transactions
    } } })
}

/// `orderCancel` as the Admin API answers it: the arguments its version requires (`refundMethod`
/// from 2025-07, `refund` before), a known order not cancelled yet, then a background job.
fn shopify_order_cancel(s: &mut ShopifyState, version: &str, variables: &Value) -> Value {
    let refuse = |code: &str, field: &str, message: &str| {
        json!({ "data": { "orderCancel": { "job": null,
            "orderCancelUserErrors": [{ "code": code, "field": [field], "message": message }] } } })
    };
    let order_id = gid_tail(variables["orderId"].as_str().unwrap_or_default()).to_string();
    let reasons = [
        "CUSTOMER",
        "DECLINED",
        "FRAUD",
        "INVENTORY",
        "OTHER",
        "STAFF",
    ];
    let reason_ok = variables["reason"]
        .as_str()
        .is_some_and(|r| reasons.contains(&r));
    let refund_ok = if version >= "2025-07" {
        variables["refundMethod"]["originalPaymentMethodsRefund"].is_boolean()
    } else {
        variables["refund"].is_boolean()
    };
    if !reason_ok || !refund_ok || !variables["restock"].is_boolean() {
        // A variable missing or of the wrong type: a top-level error, as GraphQL validation gives.
        return json!({ "errors": [{ "message": format!("Variable $input of type OrderCancel was provided invalid value: {variables}"),
            "extensions": { "code": "INVALID_VARIABLE" } }] });
    }
    if !s.orders.contains_key(&order_id) {
        return refuse("NOT_FOUND", "orderId", "Order does not exist");
    }
    if let Some(message) = s.refuse_cancel.clone() {
        return refuse("INVALID", "orderId", &message);
    }
    if s.cancelled.contains_key(&order_id) {
        return refuse("INVALID", "orderId", "Order has already been cancelled");
    }
    s.cancelled.insert(order_id, variables.clone());
    json!({ "data": { "orderCancel": {
        "job": { "id": format!("gid://shopify/Job/{}", 4_000 + s.cancelled.len()), "done": false },
        "orderCancelUserErrors": [] } } })
}

async fn shopify_graphql(
    State(fake): State<FakeShopify>,
    Path(version): Path<String>,
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
    if query.contains("orderCancel(") {
        return Json(shopify_order_cancel(&mut s, &version, variables)).into_response();
    }
    if query.contains("query orderCancelledAt(") {
        let order_id = gid_tail(variables["id"].as_str().unwrap_or_default()).to_string();
        if !s.orders.contains_key(&order_id) {
            return Json(json!({ "data": { "order": null } })).into_response();
        }
        let at = s
            .cancelled
            .contains_key(&order_id)
            .then_some("2026-12-07T09:00:00Z");
        return Json(json!({ "data": { "order": {
            "id": format!("gid://shopify/Order/{order_id}"), "cancelledAt": at } } }))
        .into_response();
    }
    if query.contains("refundCreate") {
        let answer = shopify_refund_create(&mut s, &variables["input"]);
        return Json(answer).into_response();
    }
    if query.contains("return(") {
        // No returns are requested on this shop: an unknown id is `null`, as Shopify answers.
        return Json(json!({ "data": { "return": null } })).into_response();
    }
    if query.contains("orders(") {
        return Json(orders_page(&s.listed, variables)).into_response();
    }
    if query.contains("transactions(") {
        let order_id = gid_tail(variables["id"].as_str().unwrap_or_default()).to_string();
        return Json(shopify_refund_state(&s, &order_id)).into_response();
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

/// A page of the `orders` connection as the GraphQL Admin API answers it: the orders whose
/// `updatedAt` matches the search `updated_at:>='<time>'`, oldest change first, 10 a page, each
/// edge with its cursor (opaque: here the position, base64).
fn orders_page(listed: &[(Value, String)], variables: &Value) -> Value {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let search = variables["search"].as_str().unwrap_or_default();
    let from = search
        .strip_prefix("updated_at:>='")
        .and_then(|s| s.strip_suffix('\''))
        .map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap()
        });
    let mut matching: Vec<&(Value, String)> = listed
        .iter()
        .filter(|(_, updated)| {
            let updated = time::OffsetDateTime::parse(
                updated,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            from.is_none_or(|f| updated >= f)
        })
        .collect();
    matching.sort_by(|a, b| a.1.cmp(&b.1));
    let start = variables["after"]
        .as_str()
        .map(|c| {
            String::from_utf8(b64.decode(c).unwrap())
                .unwrap()
                .parse::<usize>()
                .unwrap()
                + 1
        })
        .unwrap_or(0);
    let page: Vec<Value> = matching
        .iter()
        .enumerate()
        .skip(start)
        .take(10)
        .map(|(i, (order, updated))| json!({ "cursor": b64.encode(i.to_string()), "node": graphql_order(order, updated) }))
        .collect();
    let last = start + page.len();
    json!({ "data": { "orders": {
        "pageInfo": { "hasNextPage": last < matching.len(), "endCursor": page.last().map(|e| e["cursor"].clone()) },
        "edges": page
    } } })
}

/// A REST order (as `orders/*` webhooks carry it) as the GraphQL Admin API's `Order`.
fn graphql_order(o: &Value, updated_at: &str) -> Value {
    let money = |amount: &Value| json!({ "shopMoney": { "amount": amount, "currencyCode": o["currency"] } });
    let address = &o["shipping_address"];
    let customer = &o["customer"];
    let lines: Vec<Value> = o["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let attributes: Vec<Value> = l["properties"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|p| json!({ "key": p["name"], "value": p["value"] }))
                .collect();
            json!({
                "id": format!("gid://shopify/LineItem/{}", l["id"]),
                "sku": l["sku"], "title": l["title"], "variantTitle": l["variant_title"], "quantity": l["quantity"],
                "originalUnitPriceSet": money(&l["price"]),
                "customAttributes": attributes,
                "variant": if l["variant_id"].is_null() { Value::Null } else { json!({ "id": format!("gid://shopify/ProductVariant/{}", l["variant_id"]) }) },
            })
        })
        .collect();
    json!({
        "id": format!("gid://shopify/Order/{}", o["id"]),
        "name": o["name"], "currencyCode": o["currency"],
        "createdAt": o["created_at"], "updatedAt": updated_at,
        "cancelledAt": o["cancelled_at"],
        "cancelReason": o["cancel_reason"].as_str().map(str::to_uppercase),
        "note": o["note"], "email": o["email"], "phone": o["phone"],
        "customer": if customer.is_null() { Value::Null } else { json!({
            "firstName": customer["first_name"], "lastName": customer["last_name"],
            "defaultEmailAddress": customer["email"].as_str().map(|e| json!({ "emailAddress": e })),
            "defaultPhoneNumber": customer["phone"].as_str().map(|p| json!({ "phoneNumber": p })),
        }) },
        "subtotalPriceSet": money(&o["subtotal_price"]),
        "totalShippingPriceSet": money(&o["total_shipping_price_set"]["shop_money"]["amount"]),
        "totalTaxSet": money(&o["total_tax"]),
        "totalPriceSet": money(&o["total_price"]),
        "shippingAddress": if address.is_null() { Value::Null } else { json!({
            "name": address["name"], "firstName": address["first_name"], "lastName": address["last_name"],
            "company": address["company"], "address1": address["address1"], "address2": address["address2"],
            "city": address["city"], "province": address["province"], "provinceCode": address["province_code"],
            "zip": address["zip"], "countryCodeV2": address["country_code"], "phone": address["phone"],
        }) },
        "lineItems": { "pageInfo": { "hasNextPage": false, "endCursor": null }, "nodes": lines },
    })
}

// ---------------------------------------------------------------------------------------------
// A supplier speaking Daifa's webhook protocol.

/// One order push as the supplier received it.
#[derive(Debug, Clone)]
pub struct ReceivedPush {
    pub webhook_id: String,
    pub signature_valid: bool,
    pub body: Value,
    /// The status the supplier answered with (none while it is still answering).
    pub answer: Option<u16>,
    /// When it arrived (ms since the epoch).
    pub received_at_ms: i64,
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
    /// Pushes being answered now, and the most there were at once.
    in_flight: usize,
    max_in_flight: usize,
    /// Answer `accepted` at once rather than `submitted` (acknowledged later by callback).
    accept_at_once: bool,
    /// The answer to `order.cancel_requested`: `cancelled`, `pending` or `too_late`.
    cancel_answer: Option<String>,
    /// The answer to `order.update_requested` (revision 1.3): `applied`, `pending`,
    /// `refused`, or a status code (a supplier on 1.2 does not know the message).
    update_answer: Option<Result<String, u16>>,
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

    /// How the supplier answers cancellations from now on (`cancelled` by default).
    pub fn answer_cancellations(&self, status: &str) {
        self.state.lock().unwrap().cancel_answer = Some(status.to_string());
    }

    /// How the supplier answers order changes from now on (`applied` by default).
    pub fn answer_updates(&self, status: &str) {
        self.state.lock().unwrap().update_answer = Some(Ok(status.to_string()));
    }

    /// Answers order changes with this HTTP status, as a supplier that does not know them.
    pub fn refuse_updates_with(&self, status: u16) {
        self.state.lock().unwrap().update_answer = Some(Err(status));
    }

    /// The messages of a type the supplier received.
    pub fn received_of(&self, kind: &str) -> Vec<ReceivedPush> {
        self.received()
            .into_iter()
            .filter(|p| p.body["type"] == kind)
            .collect()
    }

    /// Acknowledges each order in its answer (`"status": "accepted"`).
    pub fn accept_at_once(&self) {
        self.state.lock().unwrap().accept_at_once = true;
    }

    pub fn always_fail(&self, status: Option<u16>) {
        self.state.lock().unwrap().always_fail = status;
    }

    pub fn received(&self) -> Vec<ReceivedPush> {
        self.state.lock().unwrap().received.clone()
    }

    /// The most pushes it was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
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
            answer: None,
            received_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("a clock after 1970")
                .as_millis() as i64,
        });
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        (s.received.len() - 1, s.delay)
    };
    let (index, delay) = delay;
    tokio::time::sleep(delay).await;
    let mut s = fake.state.lock().unwrap();
    s.in_flight -= 1;
    let response = supplier_answer(&mut s, index);
    s.received[index].answer = Some(response.status().as_u16());
    response
}

/// How the fake supplier answers the `index`th message it received.
fn supplier_answer(s: &mut SupplierState, index: usize) -> Response {
    if !s.received[index].signature_valid {
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
    // After-sales messages (protocol revision 1.2): a cancellation, a return request.
    match s.received[index].body["type"].as_str() {
        Some("order.cancel_requested") => {
            let status = s
                .cancel_answer
                .clone()
                .unwrap_or_else(|| "cancelled".into());
            return (StatusCode::OK, Json(json!({ "status": status }))).into_response();
        }
        Some("order.update_requested") => {
            return match s.update_answer.clone().unwrap_or(Ok("applied".into())) {
                Ok(status) => (StatusCode::OK, Json(json!({ "status": status }))).into_response(),
                Err(code) => (
                    StatusCode::from_u16(code).unwrap(),
                    "unknown message type order.update_requested",
                )
                    .into_response(),
            };
        }
        Some("return.requested") => {
            let n = s.received.len();
            return (
                StatusCode::OK,
                Json(json!({ "rma": format!("RMA-{n}"), "note": "write the RMA on the parcel",
                    "address": { "name": "Returns desk", "company": "Yiwu Wholesale", "line1": "88 Futian Road", "line2": null,
                                 "city": "Yiwu", "province": "Zhejiang", "province_code": "ZJ", "postal_code": "322000",
                                 "country_code": "CN", "phone": null } })),
            )
                .into_response();
        }
        _ => {}
    }
    let n = s.received.len();
    let status = if s.accept_at_once {
        "accepted"
    } else {
        "submitted"
    };
    (
        StatusCode::ACCEPTED,
        Json(json!({ "external_id": format!("SUP-{n}"), "status": status })),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// 17TRACK's tracking API v2.2, the part a carrier plugin uses: `register`, `gettrackinfo` and
// `getquota` (POST, `17token` header, JSON arrays of `{number, carrier}`; answers
// `{code, data: {accepted, rejected}}`), and its push to the webhook URL (header `sign` =
// hex SHA-256 of `body + "/" + key`). Track information is the shape of 17TRACK's published
// TRACKING_UPDATED push (shared/fixtures/17track/).

#[derive(Default)]
struct SeventeenTrackState {
    /// Registered numbers → the carrier key given (or detected).
    registered: HashMap<String, i64>,
    /// What `gettrackinfo` answers for a number: its `track_info`.
    track_info: HashMap<String, Value>,
    /// Every request: (path, JSON body).
    requests: Vec<(String, Value)>,
}

#[derive(Clone)]
pub struct FakeSeventeenTrack {
    pub base_url: String,
    key: String,
    state: Arc<Mutex<SeventeenTrackState>>,
}

impl FakeSeventeenTrack {
    pub async fn start(key: &str) -> Self {
        let fake = Self {
            base_url: String::new(),
            key: key.into(),
            state: Arc::new(Mutex::new(SeventeenTrackState::default())),
        };
        let router = axum::Router::new()
            .route("/track/v2.2/{operation}", post(seventeentrack_api))
            .with_state(fake.clone());
        let addr = serve(router).await;
        Self {
            base_url: format!("http://{addr}"),
            ..fake
        }
    }

    /// The numbers registered so far, with their carrier keys.
    pub fn registered(&self) -> HashMap<String, i64> {
        self.state.lock().unwrap().registered.clone()
    }

    /// The requests made to `operation` (`register`, `gettrackinfo`...), their bodies.
    pub fn requests(&self, operation: &str) -> Vec<Value> {
        let path = format!("/track/v2.2/{operation}");
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(p, _)| *p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Sets what the service knows of a number.
    pub fn set_track_info(&self, number: &str, track_info: Value) {
        self.state
            .lock()
            .unwrap()
            .track_info
            .insert(number.into(), track_info);
    }

    /// A `TRACKING_UPDATED` push body for `number`, built on the published sample.
    pub fn push_body(number: &str, carrier: i64, track_info: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "event": "TRACKING_UPDATED",
            "data": { "number": number, "carrier": carrier, "param": null, "tag": "", "track_info": track_info }
        }))
        .unwrap()
    }

    /// Pushes `body` to the gateway as 17TRACK does, signed with the key.
    pub async fn push(&self, gateway_hook: &str, body: Vec<u8>) -> reqwest::Response {
        let sign = self.sign(&body);
        reqwest::Client::new()
            .post(gateway_hook)
            .header("content-type", "application/json")
            .header("sign", sign)
            .body(body)
            .send()
            .await
            .expect("pushing a 17TRACK update")
    }

    pub fn sign(&self, body: &[u8]) -> String {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(body);
        hasher.update(b"/");
        hasher.update(self.key.as_bytes());
        hex::encode(hasher.finalize())
    }
}

async fn seventeentrack_api(
    State(fake): State<FakeSeventeenTrack>,
    axum::extract::Path(operation): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = fake.state.lock().unwrap();
    s.requests
        .push((format!("/track/v2.2/{operation}"), parsed.clone()));
    if headers.get("17token").and_then(|v| v.to_str().ok()) != Some(fake.key.as_str()) {
        // 17TRACK answers an unknown key with HTTP 401 and a code in the body.
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "code": -18010002, "data": { "errors": [{ "code": -18010002, "message": "Invalid access key." }] } })),
        )
            .into_response();
    }
    let items = parsed.as_array().cloned().unwrap_or_default();
    let number_of = |item: &Value| item["number"].as_str().unwrap_or_default().to_string();
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    match operation.as_str() {
        "register" => {
            for item in &items {
                let number = number_of(item);
                if s.registered.contains_key(&number) {
                    rejected.push(json!({ "number": number, "error": { "code": -18019901,
                        "message": format!("The tracking number '{number}' has been registered, don't need to repeat registration.") } }));
                    continue;
                }
                // Auto-detection when no carrier is given: China Post's key, as for the
                // China Post numbers the tests use.
                let carrier = item["carrier"].as_i64().unwrap_or(3011);
                s.registered.insert(number.clone(), carrier);
                accepted.push(json!({ "origin": 1, "number": number, "carrier": carrier }));
            }
        }
        "gettrackinfo" => {
            for item in &items {
                let number = number_of(item);
                match (s.registered.get(&number), s.track_info.get(&number)) {
                    (Some(carrier), Some(info)) => accepted.push(json!({ "number": number, "carrier": carrier, "param": null,
                                                                          "tag": "", "track_info": info })),
                    _ => rejected.push(json!({ "number": number, "error": { "code": -18019902,
                        "message": format!("The tracking number '{number}' does not register, please register first.") } })),
                }
            }
        }
        "getquota" => {
            return Json(json!({ "code": 0, "data": { "quota_total": 200, "quota_used": s.registered.len(),
                                                       "quota_remain": 200 - s.registered.len(), "today_used": s.registered.len(),
                                                       "max_track_daily": 1000, "free_email_quota": 0, "free_email_quotaused": 0 } }))
            .into_response();
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    }
    Json(json!({ "code": 0, "data": { "accepted": accepted, "rejected": rejected } }))
        .into_response()
}

/// A `track_info` of 17TRACK for a parcel with the given latest status and events (newest first,
/// as 17TRACK lists them): (time_utc, description, location, sub_status).
pub fn seventeentrack_track_info(
    status: &str,
    sub_status: &str,
    events: &[(&str, &str, &str)],
) -> Value {
    let events: Vec<Value> = events
        .iter()
        .map(|(time_utc, description, location)| {
            json!({ "time_iso": time_utc, "time_utc": time_utc, "time_raw": { "date": null, "time": null, "timezone": null },
                    "description": description, "location": location, "stage": null, "sub_status": null, "address": null })
        })
        .collect();
    json!({
        "shipping_info": { "shipper_address": { "country": "CN" }, "recipient_address": { "country": "US" } },
        "latest_status": { "status": status, "sub_status": sub_status, "sub_status_descr": null },
        "latest_event": events.first().cloned(),
        "time_metrics": { "days_after_order": 7, "days_of_transit": 4, "days_of_transit_done": 4, "days_after_last_update": 0,
                          "estimated_delivery_date": { "source": null, "from": null, "to": null } },
        "milestone": [],
        "misc_info": null,
        "tracking": { "providers_hash": 1, "providers": [ { "provider": { "key": 3011, "name": "China Post", "alias": "China Post" },
                      "service_type": null, "latest_sync_status": "Success", "latest_sync_time": null, "events_hash": 1, "events": events } ] }
    })
}
