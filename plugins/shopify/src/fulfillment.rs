//! Writing a shipment back as a Shopify fulfillment, with the GraphQL Admin API.
//!
//! Shopify fulfils *fulfillment orders* (one per location the order is assigned to), not orders,
//! so a push takes two calls: read the order's open fulfillment orders (and the fulfillments it
//! already has), then `fulfillmentCreate` for the fulfillment order line items of the shipment.

use std::collections::HashMap;

use daifa_plugin_sdk::PluginError;
use daifa_plugin_sdk::channel::FulfillmentRequest;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::graphql::{self, Call, Page, gid};

/// The order's fulfillments and fulfillment orders.
///
/// Page sizes keep the query under Shopify's limit of 1000 cost points per query: a connection
/// costs 2 plus `first` times its node, nested connections multiply (50 fulfillment orders of
/// 250 line items would cost about 25 000 and be refused). `hasNextPage` tells when an order is
/// larger than one query reads, so that a line that is not found can say why.
pub const ORDER_QUERY: &str = "query orderFulfillmentOrders($id: ID!) {
  order(id: $id) {
    id
    fulfillments(first: 20) {
      id
      trackingInfo(first: 5) {
        number
      }
    }
    fulfillmentOrders(first: 10) {
      pageInfo {
        hasNextPage
      }
      nodes {
        id
        status
        lineItems(first: 30) {
          pageInfo {
            hasNextPage
          }
          nodes {
            id
            remainingQuantity
            lineItem {
              id
            }
          }
        }
      }
    }
  }
}";

/// The mutation as shopify.dev documents it.
pub const FULFILLMENT_CREATE: &str = "mutation fulfillmentCreate($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment {
      id
      status
      trackingInfo(first: 10) {
        company
        number
        url
      }
    }
    userErrors {
      field
      message
    }
  }
}";

/// Fulfillment order statuses that can still be fulfilled. `ON_HOLD` and `SCHEDULED` must be
/// released by the merchant first; `CLOSED`, `CANCELLED` and `INCOMPLETE` are done with.
const FULFILLABLE: [&str; 2] = ["OPEN", "IN_PROGRESS"];

/// How a push ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created(String),
    /// The shipment was recorded before (an earlier attempt timed out after Shopify committed it).
    AlreadyRecorded(String),
}

impl Outcome {
    /// The id of the fulfillment (`gid://shopify/Fulfillment/...`).
    pub fn fulfillment_id(&self) -> &str {
        match self {
            Self::Created(id) | Self::AlreadyRecorded(id) => id,
        }
    }
}

/// What to do for a shipment, decided from the order's current state.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    AlreadyRecorded(String),
    Create(Call),
}

/// Pushes a shipment; `send` performs one GraphQL call and returns the body of a 2xx answer
/// (the component sends through the host, tests answer from memory).
pub fn push(
    request: &FulfillmentRequest,
    mut send: impl FnMut(&Call) -> Result<Vec<u8>, PluginError>,
) -> Result<Outcome, PluginError> {
    let order = order_state(
        &send(&order_query(&request.order_external_id)?)?,
        &request.order_external_id,
    )?;
    match decide(&order, request)? {
        Decision::AlreadyRecorded(id) => Ok(Outcome::AlreadyRecorded(id)),
        Decision::Create(call) => created_fulfillment(&send(&call)?).map(Outcome::Created),
    }
}

/// The call reading the order's fulfillment state.
pub fn order_query(order_external_id: &str) -> Result<Call, PluginError> {
    Ok(Call {
        query: ORDER_QUERY,
        variables: json!({ "id": gid("Order", order_external_id)? }),
    })
}

#[derive(Debug, Deserialize)]
struct OrderData {
    order: Option<OrderState>,
}

/// The parts of an order a fulfillment is built from.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderState {
    pub id: String,
    pub fulfillments: Vec<ExistingFulfillment>,
    pub fulfillment_orders: Page<FulfillmentOrder>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExistingFulfillment {
    pub id: String,
    pub tracking_info: Vec<TrackingNumber>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TrackingNumber {
    pub number: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentOrder {
    pub id: String,
    pub status: String,
    pub line_items: Page<FulfillmentOrderLineItem>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentOrderLineItem {
    pub id: String,
    pub remaining_quantity: u32,
    pub line_item: LineItemRef,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LineItemRef {
    pub id: String,
}

/// Reads the answer to [`order_query`]; an unknown order is `permanent`.
pub fn order_state(body: &[u8], order_external_id: &str) -> Result<OrderState, PluginError> {
    let data: OrderData = graphql::data("the fulfillment orders query", body)?;
    data.order.ok_or_else(|| {
        PluginError::permanent(format!(
            "order `{order_external_id}` was not found in the shop"
        ))
    })
}

/// Decides between reusing a recorded fulfillment and creating one.
pub fn decide(order: &OrderState, request: &FulfillmentRequest) -> Result<Decision, PluginError> {
    if let Some(existing) = recorded(order, &request.shipment.tracking_number) {
        return Ok(Decision::AlreadyRecorded(existing.to_string()));
    }
    let variables = json!({ "fulfillment": fulfillment_input(order, request)? });
    Ok(Decision::Create(Call {
        query: FULFILLMENT_CREATE,
        variables,
    }))
}

/// The fulfillment that already carries this tracking number, if any. The gateway retries a push
/// whose answer it did not get; the tracking number is what identifies a shipment in Shopify.
fn recorded<'a>(order: &'a OrderState, tracking_number: &str) -> Option<&'a str> {
    let wanted = tracking_number.trim();
    if wanted.is_empty() {
        return None;
    }
    order
        .fulfillments
        .iter()
        .find(|f| {
            f.tracking_info.iter().any(|t| {
                t.number
                    .as_deref()
                    .is_some_and(|n| n.trim().eq_ignore_ascii_case(wanted))
            })
        })
        .map(|f| f.id.as_str())
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FulfillmentInput {
    line_items_by_fulfillment_order: Vec<FulfillmentOrderLineItems>,
    tracking_info: TrackingInfo,
    notify_customer: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FulfillmentOrderLineItems {
    fulfillment_order_id: String,
    fulfillment_order_line_items: Vec<LineItemQuantity>,
}

#[derive(Debug, Serialize)]
struct LineItemQuantity {
    id: String,
    quantity: u32,
}

#[derive(Debug, Serialize)]
struct TrackingInfo {
    company: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

/// Maps the shipment's order lines to fulfillment order line items with quantity left, in
/// Shopify's order of fulfillment orders, grouped by fulfillment order.
fn fulfillment_input(
    order: &OrderState,
    request: &FulfillmentRequest,
) -> Result<FulfillmentInput, PluginError> {
    let shipment = &request.shipment;
    let mut groups: Vec<FulfillmentOrderLineItems> = Vec::new();
    // Quantity already taken from each fulfillment order line item by earlier shipment lines.
    let mut taken: HashMap<&str, u32> = HashMap::new();
    for line in shipment.lines.iter().filter(|l| l.quantity > 0) {
        let line_gid = gid("LineItem", &line.external_line_id)?;
        let mut wanted = line.quantity;
        let open = order
            .fulfillment_orders
            .nodes
            .iter()
            .filter(|fo| FULFILLABLE.contains(&fo.status.as_str()));
        for fo in open {
            for item in fo
                .line_items
                .nodes
                .iter()
                .filter(|i| i.line_item.id == line_gid)
            {
                let used = taken.entry(item.id.as_str()).or_default();
                let quantity = wanted.min(item.remaining_quantity.saturating_sub(*used));
                if quantity == 0 {
                    continue;
                }
                *used += quantity;
                wanted -= quantity;
                add(&mut groups, &fo.id, &item.id, quantity);
            }
        }
        if wanted > 0 {
            return Err(PluginError::permanent(unmatched_message(
                order,
                &line.external_line_id,
                wanted,
                line.quantity,
            )));
        }
    }
    if groups.is_empty() {
        return Err(PluginError::permanent(
            "shipment lists no order line with a quantity",
        ));
    }
    let number = Some(shipment.tracking_number.trim())
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    Ok(FulfillmentInput {
        line_items_by_fulfillment_order: groups,
        tracking_info: TrackingInfo {
            company: shipment.carrier_code.clone(),
            number,
            url: shipment
                .tracking_url
                .clone()
                .filter(|u| !u.trim().is_empty()),
        },
        notify_customer: request.notify_customer,
    })
}

fn add(groups: &mut Vec<FulfillmentOrderLineItems>, fo_id: &str, item_id: &str, quantity: u32) {
    let index = match groups.iter().position(|g| g.fulfillment_order_id == fo_id) {
        Some(index) => index,
        None => {
            groups.push(FulfillmentOrderLineItems {
                fulfillment_order_id: fo_id.to_string(),
                fulfillment_order_line_items: Vec::new(),
            });
            groups.len() - 1
        }
    };
    let items = &mut groups[index].fulfillment_order_line_items;
    match items.iter_mut().find(|i| i.id == item_id) {
        Some(existing) => existing.quantity += quantity,
        None => items.push(LineItemQuantity {
            id: item_id.to_string(),
            quantity,
        }),
    }
}

fn unmatched_message(order: &OrderState, line_id: &str, missing: u32, quantity: u32) -> String {
    let truncated = order.fulfillment_orders.has_more()
        || order
            .fulfillment_orders
            .nodes
            .iter()
            .any(|fo| fo.line_items.has_more());
    let why = if truncated {
        " (the order has more fulfillment orders or line items than one query reads)"
    } else {
        " (already fulfilled, on hold, removed or not a line of this order)"
    };
    format!(
        "order line `{line_id}`: {missing} of {quantity} shipped units have no open fulfillment order line item in order `{}`{why}",
        order.id
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateData {
    fulfillment_create: Option<CreatePayload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatePayload {
    fulfillment: Option<CreatedFulfillment>,
    #[serde(default)]
    user_errors: Vec<UserError>,
}

#[derive(Debug, Deserialize)]
struct CreatedFulfillment {
    id: String,
}

#[derive(Debug, Deserialize)]
struct UserError {
    field: Option<Vec<String>>,
    message: String,
}

/// Reads the answer to `fulfillmentCreate`: the new fulfillment's id. `userErrors` mean Shopify
/// refused the input, which a retry will not change.
pub fn created_fulfillment(body: &[u8]) -> Result<String, PluginError> {
    let data: CreateData = graphql::data("fulfillmentCreate", body)?;
    let payload = data.fulfillment_create.ok_or_else(|| {
        PluginError::permanent("shopify answered fulfillmentCreate without a payload")
    })?;
    if !payload.user_errors.is_empty() {
        let messages: Vec<String> = payload
            .user_errors
            .iter()
            .map(|e| match e.field.as_deref() {
                Some(field) if !field.is_empty() => format!("{}: {}", field.join("."), e.message),
                _ => e.message.clone(),
            })
            .collect();
        return Err(PluginError::permanent(format!(
            "shopify refused fulfillmentCreate: {}",
            messages.join("; ")
        )));
    }
    payload.fulfillment.map(|f| f.id).ok_or_else(|| {
        PluginError::permanent("shopify answered fulfillmentCreate without a fulfillment")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use daifa_plugin_sdk::types::{LineQuantity, Shipment};
    use serde_json::Value;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/shopify/");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}{name}")).unwrap()
    }

    const LINE_A: &str = "866550311766439020";
    const LINE_B: &str = "141249953214522974";
    const TRACKING: &str = "1Z001985YW99744790";
    const TRACKING_URL: &str =
        "https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums=1Z001985YW99744790";

    fn request(lines: &[(&str, u32)]) -> FulfillmentRequest {
        FulfillmentRequest {
            order_external_id: "820982911946154508".into(),
            shipment_id: "shp_01".into(),
            shipment: Shipment {
                lines: lines
                    .iter()
                    .map(|(id, quantity)| LineQuantity {
                        external_line_id: id.to_string(),
                        quantity: *quantity,
                    })
                    .collect(),
                carrier_code: "UPS".into(),
                tracking_number: TRACKING.into(),
                tracking_url: Some(TRACKING_URL.into()),
                shipped_at: 1_700_000_000_000,
            },
            notify_customer: true,
        }
    }

    fn fo_line(id: u32, line_item: &str, remaining: u32) -> Value {
        json!({
            "id": format!("gid://shopify/FulfillmentOrderLineItem/{id}"),
            "remainingQuantity": remaining,
            "lineItem": { "id": format!("gid://shopify/LineItem/{line_item}") }
        })
    }

    fn fo(id: u32, status: &str, lines: Vec<Value>) -> Value {
        json!({
            "id": format!("gid://shopify/FulfillmentOrder/{id}"),
            "status": status,
            "lineItems": { "pageInfo": { "hasNextPage": false }, "nodes": lines }
        })
    }

    /// An answer to [`ORDER_QUERY`] as Shopify shapes it.
    fn answer(fulfillments: Value, fulfillment_orders: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "data": { "order": {
                "id": "gid://shopify/Order/820982911946154508",
                "fulfillments": fulfillments,
                "fulfillmentOrders": { "pageInfo": { "hasNextPage": false }, "nodes": fulfillment_orders }
            }},
            "extensions": { "cost": { "requestedQueryCost": 664, "actualQueryCost": 9 } }
        }))
        .unwrap()
    }

    fn state(body: &[u8]) -> OrderState {
        order_state(body, "820982911946154508").unwrap()
    }

    fn one_open_order() -> OrderState {
        state(&answer(
            json!([]),
            vec![fo(
                1,
                "OPEN",
                vec![fo_line(11, LINE_A, 1), fo_line(12, LINE_B, 1)],
            )],
        ))
    }

    fn variables(decision: Decision) -> Value {
        match decision {
            Decision::Create(call) => {
                assert_eq!(call.query, FULFILLMENT_CREATE);
                call.variables
            }
            other => panic!("expected a mutation, got {other:?}"),
        }
    }

    #[test]
    fn order_query_asks_for_the_order_gid() {
        let call = order_query("820982911946154508").unwrap();
        assert_eq!(
            call.variables,
            json!({ "id": "gid://shopify/Order/820982911946154508" })
        );
        assert_eq!(
            order_query("gid://shopify/Order/5").unwrap().variables,
            json!({ "id": "gid://shopify/Order/5" })
        );
        assert_eq!(order_query("#1001").unwrap_err().kind(), "permanent");
    }

    #[test]
    fn mutation_is_the_published_one() {
        let published =
            String::from_utf8(fixture("graphql-fulfillmentCreate.mutation.graphql")).unwrap();
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(words(FULFILLMENT_CREATE), words(&published));
    }

    #[test]
    fn two_line_shipment_builds_the_published_variables() {
        let ours =
            variables(decide(&one_open_order(), &request(&[(LINE_A, 1), (LINE_B, 1)])).unwrap());
        assert_eq!(
            ours,
            json!({ "fulfillment": {
                "lineItemsByFulfillmentOrder": [{
                    "fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1",
                    "fulfillmentOrderLineItems": [
                        { "id": "gid://shopify/FulfillmentOrderLineItem/11", "quantity": 1 },
                        { "id": "gid://shopify/FulfillmentOrderLineItem/12", "quantity": 1 }
                    ]
                }],
                "trackingInfo": { "company": "UPS", "number": TRACKING, "url": TRACKING_URL },
                "notifyCustomer": true
            }})
        );
        // Every field of the published example is there, with the same values where they are the
        // same shipment (the example passes one fulfillment order where the list is expected,
        // which GraphQL input coercion allows).
        let published: Value =
            serde_json::from_slice(&fixture("graphql-fulfillmentCreate.variables.json")).unwrap();
        assert_shape(&published, &ours, "variables");
        assert_eq!(
            published["fulfillment"]["trackingInfo"]["company"],
            ours["fulfillment"]["trackingInfo"]["company"]
        );
        assert_eq!(
            published["fulfillment"]["trackingInfo"]["number"],
            ours["fulfillment"]["trackingInfo"]["number"]
        );
    }

    /// `ours` has every key of `published` with a value of the same JSON type.
    fn assert_shape(published: &Value, ours: &Value, path: &str) {
        match (published, ours) {
            (Value::Object(p), Value::Object(o)) => {
                for (key, value) in p {
                    let ours = o
                        .get(key)
                        .unwrap_or_else(|| panic!("{path}.{key} is missing"));
                    assert_shape(value, ours, &format!("{path}.{key}"));
                }
            }
            (Value::Object(_), Value::Array(items)) => {
                assert!(!items.is_empty(), "{path} is empty");
                for (i, item) in items.iter().enumerate() {
                    assert_shape(published, item, &format!("{path}[{i}]"));
                }
            }
            (Value::String(_), Value::String(_))
            | (Value::Bool(_), Value::Bool(_))
            | (Value::Number(_), Value::Number(_)) => {}
            (p, o) => panic!("{path}: published {p}, ours {o}"),
        }
    }

    #[test]
    fn lines_spread_over_fulfillment_orders_and_skip_closed_ones() {
        let order = state(&answer(
            json!([]),
            vec![
                fo(1, "CLOSED", vec![fo_line(10, LINE_A, 3)]),
                fo(2, "IN_PROGRESS", vec![fo_line(20, LINE_A, 1)]),
                fo(3, "ON_HOLD", vec![fo_line(30, LINE_A, 5)]),
                fo(
                    4,
                    "OPEN",
                    vec![fo_line(40, LINE_B, 1), fo_line(41, LINE_A, 4)],
                ),
            ],
        ));
        let ours =
            variables(decide(&order, &request(&[(LINE_A, 2), (LINE_A, 1), (LINE_B, 0)])).unwrap());
        assert_eq!(
            ours["fulfillment"]["lineItemsByFulfillmentOrder"],
            json!([
                { "fulfillmentOrderId": "gid://shopify/FulfillmentOrder/2",
                  "fulfillmentOrderLineItems": [{ "id": "gid://shopify/FulfillmentOrderLineItem/20", "quantity": 1 }] },
                { "fulfillmentOrderId": "gid://shopify/FulfillmentOrder/4",
                  "fulfillmentOrderLineItems": [{ "id": "gid://shopify/FulfillmentOrderLineItem/41", "quantity": 2 }] }
            ])
        );
    }

    #[test]
    fn line_without_an_open_fulfillment_order_line_item_is_permanent() {
        let order = state(&answer(
            json!([]),
            vec![fo(1, "CLOSED", vec![fo_line(11, LINE_A, 1)])],
        ));
        let err = decide(&order, &request(&[(LINE_A, 1)])).unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert!(
            err.message().contains(LINE_A)
                && err
                    .message()
                    .contains("no open fulfillment order line item"),
            "{}",
            err.message()
        );

        let err = decide(&one_open_order(), &request(&[(LINE_A, 2)])).unwrap_err();
        assert!(
            err.message().contains("1 of 2 shipped units"),
            "{}",
            err.message()
        );
        let err = decide(&one_open_order(), &request(&[("12345", 1)])).unwrap_err();
        assert_eq!(err.kind(), "permanent");
        let err = decide(&one_open_order(), &request(&[("SKU-1", 1)])).unwrap_err();
        assert_eq!(err.message(), "`SKU-1` is not a shopify LineItem id");
        let err = decide(&one_open_order(), &request(&[])).unwrap_err();
        assert_eq!(
            err.message(),
            "shipment lists no order line with a quantity"
        );
    }

    #[test]
    fn already_recorded_tracking_number_returns_the_existing_fulfillment() {
        let fulfillments = json!([
            { "id": "gid://shopify/Fulfillment/7", "trackingInfo": [{ "number": null }] },
            { "id": "gid://shopify/Fulfillment/8", "trackingInfo": [{ "number": "1z001985yw99744790 " }] }
        ]);
        // The shipped lines are no longer open: the decision must not get as far as mapping them.
        let body = answer(
            fulfillments,
            vec![fo(1, "CLOSED", vec![fo_line(11, LINE_A, 0)])],
        );
        let decision = decide(&state(&body), &request(&[(LINE_A, 1)])).unwrap();
        assert_eq!(
            decision,
            Decision::AlreadyRecorded("gid://shopify/Fulfillment/8".into())
        );

        let mut calls = Vec::new();
        let outcome = push(&request(&[(LINE_A, 1)]), |call| {
            calls.push(call.query);
            Ok(body.clone())
        })
        .unwrap();
        assert_eq!(
            outcome,
            Outcome::AlreadyRecorded("gid://shopify/Fulfillment/8".into())
        );
        assert_eq!(calls, [ORDER_QUERY], "no mutation may be sent");
    }

    #[test]
    fn push_queries_then_creates() {
        let created = serde_json::to_vec(&json!({
            "data": serde_json::from_slice::<Value>(&fixture("graphql-fulfillmentCreate.response-data.json")).unwrap()
        }))
        .unwrap();
        let mut calls: Vec<Call> = Vec::new();
        let outcome = push(&request(&[(LINE_A, 1), (LINE_B, 1)]), |call| {
            calls.push(call.clone());
            Ok(if call.query == ORDER_QUERY {
                answer(
                    json!([]),
                    vec![fo(
                        1,
                        "OPEN",
                        vec![fo_line(11, LINE_A, 1), fo_line(12, LINE_B, 1)],
                    )],
                )
            } else {
                created.clone()
            })
        })
        .unwrap();
        assert_eq!(
            outcome,
            Outcome::Created("gid://shopify/Fulfillment/1".into())
        );
        assert_eq!(outcome.fulfillment_id(), "gid://shopify/Fulfillment/1");
        assert_eq!(
            calls.iter().map(|c| c.query).collect::<Vec<_>>(),
            [ORDER_QUERY, FULFILLMENT_CREATE]
        );
        // The body the host sends.
        let body: Value = serde_json::to_value(&calls[1]).unwrap();
        assert_eq!(body["query"], FULFILLMENT_CREATE);
        assert_eq!(body["variables"]["fulfillment"]["notifyCustomer"], true);
    }

    #[test]
    fn published_response_yields_the_fulfillment_id() {
        let data: Value =
            serde_json::from_slice(&fixture("graphql-fulfillmentCreate.response-data.json"))
                .unwrap();
        let body = serde_json::to_vec(&json!({ "data": data })).unwrap();
        assert_eq!(
            created_fulfillment(&body).unwrap(),
            "gid://shopify/Fulfillment/1"
        );
    }

    #[test]
    fn user_errors_are_permanent_with_their_messages() {
        let body = br#"{"data":{"fulfillmentCreate":{"fulfillment":null,"userErrors":[
            {"field":["fulfillment","lineItemsByFulfillmentOrder","0","fulfillmentOrderId"],"message":"Fulfillment order does not exist."},
            {"field":null,"message":"Invalid tracking URL."}]}}}"#;
        let err = created_fulfillment(body).unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert_eq!(
            err.message(),
            "shopify refused fulfillmentCreate: fulfillment.lineItemsByFulfillmentOrder.0.fulfillmentOrderId: \
             Fulfillment order does not exist.; Invalid tracking URL."
        );
    }

    #[test]
    fn throttling_is_transient() {
        let body = br#"{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED","documentation":"https://shopify.dev/api/usage/rate-limits"}}],"extensions":{"cost":{"requestedQueryCost":664,"actualQueryCost":null,"throttleStatus":{"maximumAvailable":2000.0,"currentlyAvailable":100,"restoreRate":100.0}}}}"#;
        assert_eq!(created_fulfillment(body).unwrap_err().kind(), "transient");
        assert_eq!(order_state(body, "1").unwrap_err().kind(), "transient");
        // A failed call stops the push: no mutation after a throttled query.
        let mut calls = 0;
        let err = push(&request(&[(LINE_A, 1)]), |_| {
            calls += 1;
            Ok(body.to_vec())
        })
        .unwrap_err();
        assert_eq!((err.kind(), calls), ("transient", 1));
    }

    #[test]
    fn unknown_order_is_permanent() {
        let err = order_state(br#"{"data":{"order":null}}"#, "820982911946154508").unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert_eq!(
            err.message(),
            "order `820982911946154508` was not found in the shop"
        );
    }

    #[test]
    fn transport_errors_pass_through() {
        let err = push(&request(&[(LINE_A, 1)]), |_| {
            Err(PluginError::transient("POST … answered 503: "))
        })
        .unwrap_err();
        assert_eq!(err.kind(), "transient");
    }
}
