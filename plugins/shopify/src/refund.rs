//! Refunding the customer through Shopify, with the GraphQL Admin API.
//!
//! A refund takes two calls: read the order's payment transactions and the refunds it already
//! has, then `refundCreate`. Money only moves when the refund carries transactions: each one of
//! kind `REFUND` against a successful `SALE` or `CAPTURE` (its parent), on the parent's gateway.
//! Refund lines only record which line items were refunded (and whether they are restocked).
//!
//! Idempotency: the refund's note starts with `daifa case {case id}`. Before creating, the
//! order's refunds are searched for that note: a refund an earlier attempt committed (its answer
//! lost to a timeout) is returned as the same success. From API version 2026-01 the mutation
//! also carries Shopify's `@idempotent` directive with a key derived from the case id (mandatory
//! from 2026-04), which covers two attempts racing each other as well.

use daifa_plugin_sdk::channel::RefundRequest;
use daifa_plugin_sdk::types::Money;
use daifa_plugin_sdk::{PluginError, money};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::graphql::{self, Call, UserError, gid};

/// The order's currencies, refunds and payment transactions.
///
/// `refunds` and `transactions` are lists, not connections: `first` caps them. An order with more
/// than 50 refunds or transactions is beyond what Daifa handles.
pub const ORDER_QUERY: &str = "query orderRefundState($id: ID!) {
  order(id: $id) {
    id
    currencyCode
    presentmentCurrencyCode
    refunds(first: 50) {
      id
      note
    }
    transactions(first: 50) {
      id
      kind
      status
      gateway
      parentTransaction {
        id
      }
      amountSet {
        presentmentMoney {
          amount
          currencyCode
        }
      }
    }
  }
}";

/// The mutation, with the payload fields shopify.dev documents (`RefundCreatePayload`).
pub const REFUND_CREATE: &str = "mutation refundCreate($input: RefundInput!) {
  refundCreate(input: $input) {
    refund {
      id
      note
      totalRefundedSet {
        presentmentMoney {
          amount
          currencyCode
        }
      }
    }
    userErrors {
      field
      message
    }
  }
}";

/// The same mutation with Shopify's idempotency directive (API 2026-01 and later).
pub const REFUND_CREATE_IDEMPOTENT: &str =
    "mutation refundCreate($input: RefundInput!, $idempotencyKey: String!) {
  refundCreate(input: $input) @idempotent(key: $idempotencyKey) {
    refund {
      id
      note
      totalRefundedSet {
        presentmentMoney {
          amount
          currencyCode
        }
      }
    }
    userErrors {
      field
      message
    }
  }
}";

/// The first Admin API version whose `refundCreate` takes the `@idempotent` directive; earlier
/// versions refuse an unknown directive.
pub const IDEMPOTENT_SINCE: &str = "2026-01";

/// What every note of a refund Daifa made starts with, before the case id.
pub const NOTE_PREFIX: &str = "daifa case ";

/// Transaction kinds a refund can be made against.
const REFUNDABLE_KINDS: [&str; 2] = ["SALE", "CAPTURE"];

/// How a refund ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created(String),
    /// The case was refunded before (an earlier attempt committed it).
    AlreadyRecorded(String),
}

impl Outcome {
    /// The id of the refund (`gid://shopify/Refund/...`).
    pub fn refund_id(&self) -> &str {
        match self {
            Self::Created(id) | Self::AlreadyRecorded(id) => id,
        }
    }
}

/// What to do for a refund request, decided from the order's current state.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    AlreadyRecorded(String),
    Create(Call),
}

/// Refunds a case; `send` performs one GraphQL call and returns the body of a 2xx answer.
/// `api_version` is the connection's Admin API version (it decides the idempotency directive).
pub fn push(
    request: &RefundRequest,
    api_version: &str,
    mut send: impl FnMut(&Call) -> Result<Vec<u8>, PluginError>,
) -> Result<Outcome, PluginError> {
    check(request)?;
    let order = order_state(
        &send(&order_query(&request.order_external_id)?)?,
        &request.order_external_id,
    )?;
    match decide(&order, request, api_version)? {
        Decision::AlreadyRecorded(id) => Ok(Outcome::AlreadyRecorded(id)),
        Decision::Create(call) => created_refund(&send(&call)?).map(Outcome::Created),
    }
}

/// Refuses, before any call, a request that cannot become a refund.
pub fn check(request: &RefundRequest) -> Result<(), PluginError> {
    let amount = &request.amount;
    money::exponent(&amount.currency).map_err(|e| PluginError::permanent(e.message()))?;
    if amount.amount_minor < 0 {
        return Err(PluginError::permanent(format!(
            "a refund amount cannot be negative ({} minor units of {})",
            amount.amount_minor, amount.currency
        )));
    }
    if amount.amount_minor == 0 && request.lines.iter().all(|l| l.quantity == 0) {
        return Err(PluginError::permanent(
            "nothing to refund: the amount is zero and no line is refunded",
        ));
    }
    if request.case_id.trim().is_empty() {
        return Err(PluginError::permanent(
            "a refund needs its case id (the idempotency key)",
        ));
    }
    Ok(())
}

/// The call reading the order's refunds and transactions.
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

/// The parts of an order a refund is built from.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderState {
    pub id: String,
    /// The shop's currency.
    pub currency_code: String,
    /// The currency the customer paid in: the currency of transaction amounts.
    pub presentment_currency_code: Option<String>,
    #[serde(default)]
    pub refunds: Vec<ExistingRefund>,
    #[serde(default)]
    pub transactions: Vec<Transaction>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExistingRefund {
    pub id: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub gateway: Option<String>,
    pub parent_transaction: Option<TransactionRef>,
    pub amount_set: MoneyBag,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TransactionRef {
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoneyBag {
    pub presentment_money: MoneyV2,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoneyV2 {
    pub amount: String,
    pub currency_code: String,
}

/// Reads the answer to [`order_query`]; an unknown order is `permanent`.
pub fn order_state(body: &[u8], order_external_id: &str) -> Result<OrderState, PluginError> {
    let data: OrderData = graphql::data("the order refunds query", body)?;
    data.order.ok_or_else(|| {
        PluginError::permanent(format!(
            "order `{order_external_id}` was not found in the shop"
        ))
    })
}

/// The note of the case's refund: `daifa case {case id}`, then the reason.
pub fn note(request: &RefundRequest) -> String {
    let marker = format!("{NOTE_PREFIX}{}", request.case_id.trim());
    match request.reason.as_deref().map(str::trim) {
        Some(reason) if !reason.is_empty() => format!("{marker}: {reason}"),
        _ => marker,
    }
}

/// The case id of a note Daifa wrote ([`note`]), `None` for a note that is not one of them.
pub fn case_of_note(note: &str) -> Option<&str> {
    let rest = note.trim_start().strip_prefix(NOTE_PREFIX)?;
    let end = rest
        .find(|c: char| c == ':' || c.is_whitespace())
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|id| !id.is_empty())
}

/// Decides between reusing the case's refund and creating one.
pub fn decide(
    order: &OrderState,
    request: &RefundRequest,
    api_version: &str,
) -> Result<Decision, PluginError> {
    if let Some(existing) = recorded(order, &request.case_id) {
        return Ok(Decision::AlreadyRecorded(existing.to_string()));
    }
    let input = refund_input(order, request)?;
    Ok(Decision::Create(if idempotent(api_version) {
        Call {
            query: REFUND_CREATE_IDEMPOTENT,
            variables: json!({ "input": input, "idempotencyKey": idempotency_key(&request.case_id) }),
        }
    } else {
        Call {
            query: REFUND_CREATE,
            variables: json!({ "input": input }),
        }
    }))
}

/// Whether the API version's `refundCreate` takes the `@idempotent` directive. Versions are
/// `YYYY-MM` (or `unstable`, the newest), so they compare as text.
pub fn idempotent(api_version: &str) -> bool {
    api_version.trim() >= IDEMPOTENT_SINCE
}

/// The idempotency key of a case's refund: the same on every attempt.
pub fn idempotency_key(case_id: &str) -> String {
    format!("daifa-refund-{}", case_id.trim())
}

/// The refund of this case the order already has, if any.
fn recorded<'a>(order: &'a OrderState, case_id: &str) -> Option<&'a str> {
    let case_id = case_id.trim();
    order
        .refunds
        .iter()
        .find(|r| r.note.as_deref().and_then(case_of_note) == Some(case_id))
        .map(|r| r.id.as_str())
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RefundInput {
    order_id: String,
    /// Only when the customer paid in another currency than the shop's (Shopify requires it then).
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<String>,
    note: String,
    notify: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    refund_line_items: Vec<RefundLineItem>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    transactions: Vec<TransactionInput>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RefundLineItem {
    line_item_id: String,
    quantity: u32,
    /// Daifa's goods are the supplier's: nothing goes back into the shop's inventory.
    restock_type: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TransactionInput {
    order_id: String,
    parent_id: String,
    gateway: String,
    kind: &'static str,
    amount: String,
}

/// Builds the `RefundInput`: the lines, and the amount spread over the order's payments.
fn refund_input(order: &OrderState, request: &RefundRequest) -> Result<RefundInput, PluginError> {
    let currency = request.amount.currency.trim().to_ascii_uppercase();
    let presentment = order
        .presentment_currency_code
        .as_deref()
        .unwrap_or(&order.currency_code)
        .to_ascii_uppercase();
    if currency != presentment {
        return Err(PluginError::permanent(format!(
            "the refund is in {currency}, order `{}` was paid in {presentment}: refund it in Shopify's admin",
            request.order_external_id
        )));
    }
    let mut refund_line_items: Vec<RefundLineItem> = Vec::new();
    for line in request.lines.iter().filter(|l| l.quantity > 0) {
        let line_item_id = gid("LineItem", &line.external_line_id)?;
        match refund_line_items
            .iter_mut()
            .find(|l| l.line_item_id == line_item_id)
        {
            Some(existing) => existing.quantity += line.quantity,
            None => refund_line_items.push(RefundLineItem {
                line_item_id,
                quantity: line.quantity,
                restock_type: "NO_RESTOCK",
            }),
        }
    }
    let transactions = allocate(order, &currency, request.amount.amount_minor)?;
    Ok(RefundInput {
        order_id: order.id.clone(),
        currency: (!order.currency_code.eq_ignore_ascii_case(&presentment)).then_some(presentment),
        note: note(request),
        notify: request.notify_customer,
        refund_line_items,
        transactions,
    })
}

/// Spreads `amount_minor` over the order's successful sales and captures, oldest first, each up
/// to what is left of it after its earlier refunds.
fn allocate(
    order: &OrderState,
    currency: &str,
    amount_minor: i64,
) -> Result<Vec<TransactionInput>, PluginError> {
    if amount_minor == 0 {
        return Ok(Vec::new());
    }
    let mut transactions = Vec::new();
    let mut remaining = amount_minor;
    let mut refundable_total: i64 = 0;
    for parent in order.transactions.iter().filter(|t| {
        REFUNDABLE_KINDS.contains(&t.kind.as_str()) && t.status.eq_ignore_ascii_case("SUCCESS")
    }) {
        let paid = transaction_amount(parent, currency)?;
        let mut refunded: i64 = 0;
        for refund in order.transactions.iter().filter(|t| {
            t.kind == "REFUND"
                && matches!(t.status.as_str(), "SUCCESS" | "PENDING")
                && t.parent_transaction.as_ref().map(|p| p.id.as_str()) == Some(parent.id.as_str())
        }) {
            refunded += transaction_amount(refund, currency)?;
        }
        let available = (paid - refunded).max(0);
        refundable_total += available;
        let take = remaining.min(available);
        if take == 0 {
            continue;
        }
        let gateway = parent
            .gateway
            .clone()
            .filter(|g| !g.trim().is_empty())
            .ok_or_else(|| {
                PluginError::permanent(format!(
                    "payment transaction `{}` names no gateway to refund through",
                    parent.id
                ))
            })?;
        transactions.push(TransactionInput {
            order_id: order.id.clone(),
            parent_id: parent.id.clone(),
            gateway,
            kind: "REFUND",
            amount: money::format(&Money {
                amount_minor: take,
                currency: currency.to_string(),
            })?,
        });
        remaining -= take;
        if remaining == 0 {
            return Ok(transactions);
        }
    }
    let format = |amount_minor| {
        money::format(&Money {
            amount_minor,
            currency: currency.to_string(),
        })
        .unwrap_or_else(|_| amount_minor.to_string())
    };
    Err(PluginError::permanent(if refundable_total == 0 {
        format!(
            "order `{}` has no successful payment (sale or capture) left to refund",
            order.id
        )
    } else {
        format!(
            "a refund of {} {currency} is more than the {} {currency} left to refund on order `{}`",
            format(amount_minor),
            format(refundable_total),
            order.id
        )
    }))
}

/// A transaction's amount in the currency the customer paid in.
fn transaction_amount(transaction: &Transaction, currency: &str) -> Result<i64, PluginError> {
    let paid = &transaction.amount_set.presentment_money;
    if !paid.currency_code.eq_ignore_ascii_case(currency) {
        return Err(PluginError::permanent(format!(
            "transaction `{}` is in {}, the refund in {currency}",
            transaction.id, paid.currency_code
        )));
    }
    money::parse(&paid.amount, currency)
        .map(|m| m.amount_minor)
        .map_err(|e| {
            PluginError::permanent(format!(
                "unexpected amount of transaction `{}`: {}",
                transaction.id,
                e.message()
            ))
        })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateData {
    refund_create: Option<CreatePayload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatePayload {
    refund: Option<CreatedRefund>,
    #[serde(default)]
    user_errors: Vec<UserError>,
}

#[derive(Debug, Deserialize)]
struct CreatedRefund {
    id: String,
}

/// Reads the answer to `refundCreate`: the new refund's id. `userErrors` are `permanent`.
pub fn created_refund(body: &[u8]) -> Result<String, PluginError> {
    let data: CreateData = graphql::data("refundCreate", body)?;
    let payload = data
        .refund_create
        .ok_or_else(|| PluginError::permanent("shopify answered refundCreate without a payload"))?;
    if !payload.user_errors.is_empty() {
        return Err(graphql::user_errors("refundCreate", &payload.user_errors));
    }
    payload
        .refund
        .map(|r| r.id)
        .ok_or_else(|| PluginError::permanent("shopify answered refundCreate without a refund"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use daifa_plugin_sdk::types::LineQuantity;
    use serde_json::Value;

    const ORDER: &str = "820982911946154508";
    const LINE_A: &str = "866550311766439020";
    const LINE_B: &str = "141249953214522974";
    const CASE: &str = "case_01JZ8Q7C2M4V6X8Z0B2D4F6H8K";

    fn request(amount_minor: i64, lines: &[(&str, u32)]) -> RefundRequest {
        RefundRequest {
            order_external_id: ORDER.into(),
            case_id: CASE.into(),
            amount: Money {
                amount_minor,
                currency: "USD".into(),
            },
            lines: lines
                .iter()
                .map(|(id, quantity)| LineQuantity {
                    external_line_id: id.to_string(),
                    quantity: *quantity,
                })
                .collect(),
            reason: Some("ordered twice".into()),
            notify_customer: true,
        }
    }

    fn sale(id: u32, amount: &str) -> Value {
        json!({
            "id": format!("gid://shopify/OrderTransaction/{id}"), "kind": "SALE", "status": "SUCCESS",
            "gateway": "shopify_payments", "parentTransaction": null,
            "amountSet": { "presentmentMoney": { "amount": amount, "currencyCode": "USD" } }
        })
    }

    fn refund_tx(id: u32, parent: u32, amount: &str, status: &str) -> Value {
        json!({
            "id": format!("gid://shopify/OrderTransaction/{id}"), "kind": "REFUND", "status": status,
            "gateway": "shopify_payments",
            "parentTransaction": { "id": format!("gid://shopify/OrderTransaction/{parent}") },
            "amountSet": { "presentmentMoney": { "amount": amount, "currencyCode": "USD" } }
        })
    }

    /// An answer to [`ORDER_QUERY`] as Shopify shapes it.
    fn answer(refunds: Value, transactions: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "data": { "order": {
                "id": format!("gid://shopify/Order/{ORDER}"),
                "currencyCode": "USD",
                "presentmentCurrencyCode": "USD",
                "refunds": refunds,
                "transactions": transactions
            }},
            "extensions": { "cost": { "requestedQueryCost": 12, "actualQueryCost": 4 } }
        }))
        .unwrap()
    }

    fn state(body: &[u8]) -> OrderState {
        order_state(body, ORDER).unwrap()
    }

    fn paid() -> OrderState {
        state(&answer(json!([]), vec![sale(1, "388.0")]))
    }

    fn variables(decision: Decision) -> Value {
        match decision {
            Decision::Create(call) => {
                assert_eq!(call.query, REFUND_CREATE);
                call.variables
            }
            other => panic!("expected a mutation, got {other:?}"),
        }
    }

    #[test]
    fn order_query_asks_for_the_order_gid() {
        assert_eq!(
            order_query(ORDER).unwrap().variables,
            json!({ "id": format!("gid://shopify/Order/{ORDER}") })
        );
        assert_eq!(order_query("#1001").unwrap_err().kind(), "permanent");
    }

    #[test]
    fn a_whole_order_refund_builds_the_documented_input() {
        let ours = variables(
            decide(
                &paid(),
                &request(38_800, &[(LINE_A, 1), (LINE_B, 1)]),
                "2025-07",
            )
            .unwrap(),
        );
        assert_eq!(
            ours,
            json!({ "input": {
                "orderId": format!("gid://shopify/Order/{ORDER}"),
                "note": format!("daifa case {CASE}: ordered twice"),
                "notify": true,
                "refundLineItems": [
                    { "lineItemId": format!("gid://shopify/LineItem/{LINE_A}"), "quantity": 1, "restockType": "NO_RESTOCK" },
                    { "lineItemId": format!("gid://shopify/LineItem/{LINE_B}"), "quantity": 1, "restockType": "NO_RESTOCK" }
                ],
                "transactions": [{
                    "orderId": format!("gid://shopify/Order/{ORDER}"),
                    "parentId": "gid://shopify/OrderTransaction/1",
                    "gateway": "shopify_payments",
                    "kind": "REFUND",
                    "amount": "388.00"
                }]
            }})
        );
    }

    #[test]
    fn an_amount_only_refund_has_no_lines_and_follows_the_currency_exponent() {
        let ours = variables(decide(&paid(), &request(3_980, &[]), "2025-07").unwrap());
        assert!(ours["input"].get("refundLineItems").is_none(), "{ours}");
        assert_eq!(ours["input"]["transactions"][0]["amount"], "39.80");

        let jpy = state(
            &serde_json::to_vec(&json!({ "data": { "order": {
                "id": "gid://shopify/Order/5", "currencyCode": "JPY", "presentmentCurrencyCode": "JPY",
                "refunds": [],
                "transactions": [{ "id": "gid://shopify/OrderTransaction/9", "kind": "CAPTURE", "status": "SUCCESS",
                    "gateway": "bogus", "parentTransaction": { "id": "gid://shopify/OrderTransaction/8" },
                    "amountSet": { "presentmentMoney": { "amount": "1700.0", "currencyCode": "JPY" } } }]
            } } }))
            .unwrap(),
        );
        let mut yen = request(1_200, &[]);
        yen.amount.currency = "JPY".into();
        yen.order_external_id = "5".into();
        let ours = variables(decide(&jpy, &yen, "2025-07").unwrap());
        assert_eq!(ours["input"]["transactions"][0]["amount"], "1200");
        assert_eq!(
            ours["input"]["transactions"][0]["parentId"],
            "gid://shopify/OrderTransaction/9"
        );
    }

    #[test]
    fn the_amount_is_spread_over_payments_minus_their_earlier_refunds() {
        let order = state(&answer(
            json!([{ "id": "gid://shopify/Refund/70", "note": "damaged box" }]),
            vec![
                json!({ "id": "gid://shopify/OrderTransaction/1", "kind": "AUTHORIZATION", "status": "SUCCESS",
                        "gateway": "shopify_payments", "parentTransaction": null,
                        "amountSet": { "presentmentMoney": { "amount": "100.00", "currencyCode": "USD" } } }),
                sale(2, "100.00"),
                refund_tx(3, 2, "60.00", "SUCCESS"),
                refund_tx(4, 2, "30.00", "FAILURE"),
                sale(5, "50.00"),
                json!({ "id": "gid://shopify/OrderTransaction/6", "kind": "SALE", "status": "FAILURE",
                        "gateway": "gift_card", "parentTransaction": null,
                        "amountSet": { "presentmentMoney": { "amount": "500.00", "currencyCode": "USD" } } }),
            ],
        ));
        let ours = variables(decide(&order, &request(7_000, &[]), "2025-07").unwrap());
        let amounts: Vec<(&str, &str)> = ours["input"]["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["parentId"].as_str().unwrap(),
                    t["amount"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            amounts,
            [
                ("gid://shopify/OrderTransaction/2", "40.00"),
                ("gid://shopify/OrderTransaction/5", "30.00")
            ]
        );

        let err = decide(&order, &request(9_001, &[]), "2025-07").unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert!(
            err.message()
                .contains("90.01 USD is more than the 90.00 USD left to refund"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn an_unpaid_order_cannot_be_refunded() {
        let order = state(&answer(json!([]), vec![]));
        let err = decide(&order, &request(100, &[]), "2025-07").unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert!(
            err.message().contains("no successful payment"),
            "{}",
            err.message()
        );
        // Lines alone (no money) need no payment.
        let ours = variables(decide(&order, &request(0, &[(LINE_A, 2)]), "2025-07").unwrap());
        assert!(ours["input"].get("transactions").is_none(), "{ours}");
        assert_eq!(ours["input"]["refundLineItems"][0]["quantity"], 2);
    }

    #[test]
    fn another_currency_than_the_payments_is_refused() {
        let mut euros = request(1_000, &[]);
        euros.amount.currency = "EUR".into();
        let err = decide(&paid(), &euros, "2025-07").unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert!(err.message().contains("paid in USD"), "{}", err.message());

        // The customer paid in EUR in a USD shop: a refund in EUR names its currency.
        let order = state(
            &serde_json::to_vec(&json!({ "data": { "order": {
                "id": format!("gid://shopify/Order/{ORDER}"), "currencyCode": "USD", "presentmentCurrencyCode": "EUR",
                "refunds": [],
                "transactions": [{ "id": "gid://shopify/OrderTransaction/1", "kind": "SALE", "status": "SUCCESS",
                    "gateway": "shopify_payments", "parentTransaction": null,
                    "amountSet": { "presentmentMoney": { "amount": "20.00", "currencyCode": "EUR" } } }]
            } } }))
            .unwrap(),
        );
        let ours = variables(decide(&order, &euros, "2025-07").unwrap());
        assert_eq!(ours["input"]["currency"], "EUR");
        assert_eq!(ours["input"]["transactions"][0]["amount"], "10.00");
        let err = decide(&order, &request(1_000, &[]), "2025-07").unwrap_err();
        assert!(err.message().contains("paid in EUR"), "{}", err.message());
    }

    #[test]
    fn requests_that_cannot_be_refunds_are_refused_before_any_call() {
        for (amount, lines, message) in [
            (0, vec![], "nothing to refund"),
            (0, vec![(LINE_A, 0)], "nothing to refund"),
            (-100, vec![], "cannot be negative"),
        ] {
            let mut calls = 0;
            let err = push(&request(amount, &lines), "2025-07", |_| {
                calls += 1;
                Ok(Vec::new())
            })
            .unwrap_err();
            assert_eq!((err.kind(), calls), ("permanent", 0));
            assert!(err.message().contains(message), "{}", err.message());
        }
        let mut odd = request(100, &[]);
        odd.amount.currency = "XYZ".into();
        assert_eq!(check(&odd).unwrap_err().kind(), "permanent");
        let err = decide(&paid(), &request(100, &[("SKU-1", 1)]), "2025-07").unwrap_err();
        assert_eq!(err.message(), "`SKU-1` is not a shopify LineItem id");
    }

    #[test]
    fn notes_carry_the_case_id() {
        assert_eq!(
            note(&request(1, &[])),
            format!("daifa case {CASE}: ordered twice")
        );
        let mut bare = request(1, &[]);
        bare.reason = Some("  ".into());
        assert_eq!(note(&bare), format!("daifa case {CASE}"));
        assert_eq!(case_of_note(&note(&bare)), Some(CASE));
        assert_eq!(case_of_note("daifa case case_1: x"), Some("case_1"));
        assert_eq!(case_of_note("daifa case case_1 more"), Some("case_1"));
        assert_eq!(case_of_note("Daifa case case_1"), None);
        assert_eq!(case_of_note("refund of daifa case case_1"), None);
        assert_eq!(case_of_note("daifa case "), None);
    }

    #[test]
    fn an_earlier_refund_of_the_case_is_the_same_success() {
        let body = answer(
            json!([
                { "id": "gid://shopify/Refund/10", "note": null },
                { "id": "gid://shopify/Refund/11", "note": format!("daifa case {CASE}X: another case") },
                { "id": "gid://shopify/Refund/12", "note": format!("daifa case {CASE}: ordered twice") }
            ]),
            // Everything is refunded already: the decision must not get as far as the money.
            vec![sale(1, "388.00"), refund_tx(2, 1, "388.00", "SUCCESS")],
        );
        assert_eq!(
            decide(&state(&body), &request(38_800, &[]), "2025-07").unwrap(),
            Decision::AlreadyRecorded("gid://shopify/Refund/12".into())
        );
        let mut calls = Vec::new();
        let outcome = push(&request(38_800, &[]), "2025-07", |call| {
            calls.push(call.query);
            Ok(body.clone())
        })
        .unwrap();
        assert_eq!(
            outcome,
            Outcome::AlreadyRecorded("gid://shopify/Refund/12".into())
        );
        assert_eq!(outcome.refund_id(), "gid://shopify/Refund/12");
        assert_eq!(calls, [ORDER_QUERY], "no mutation may be sent");
    }

    #[test]
    fn push_queries_then_creates_and_a_rerun_finds_the_refund() {
        // A fake shop: the mutation records the refund, with its note, in the order.
        let mut refunds: Vec<Value> = Vec::new();
        let mut calls: Vec<Call> = Vec::new();
        let mut shop = |call: &Call| -> Result<Vec<u8>, PluginError> {
            calls.push(call.clone());
            if call.query == ORDER_QUERY {
                return Ok(answer(
                    Value::Array(refunds.clone()),
                    vec![sale(1, "388.00")],
                ));
            }
            let id = format!("gid://shopify/Refund/{}", 900 + refunds.len());
            refunds.push(json!({ "id": id, "note": call.variables["input"]["note"] }));
            Ok(serde_json::to_vec(&json!({ "data": { "refundCreate": {
                "refund": { "id": id, "note": call.variables["input"]["note"],
                            "totalRefundedSet": { "presentmentMoney": { "amount": "388.0", "currencyCode": "USD" } } },
                "userErrors": []
            } } }))
            .unwrap())
        };
        let first = push(
            &request(38_800, &[(LINE_A, 1), (LINE_B, 1)]),
            "2025-07",
            &mut shop,
        )
        .unwrap();
        assert_eq!(first, Outcome::Created("gid://shopify/Refund/900".into()));
        // The answer was lost: the retry finds the refund instead of refunding twice.
        let again = push(
            &request(38_800, &[(LINE_A, 1), (LINE_B, 1)]),
            "2025-07",
            &mut shop,
        )
        .unwrap();
        assert_eq!(
            again,
            Outcome::AlreadyRecorded("gid://shopify/Refund/900".into())
        );
        assert_eq!(
            calls.iter().map(|c| c.query).collect::<Vec<_>>(),
            [ORDER_QUERY, REFUND_CREATE, ORDER_QUERY]
        );
        // The body the host sends.
        let body = serde_json::to_value(&calls[1]).unwrap();
        assert_eq!(body["query"], REFUND_CREATE);
        assert_eq!(
            body["variables"]["input"]["transactions"][0]["kind"],
            "REFUND"
        );
    }

    #[test]
    fn newer_api_versions_send_the_idempotency_directive() {
        assert!(!idempotent("2025-07"));
        assert!(!idempotent("2025-10"));
        assert!(idempotent("2026-01"));
        assert!(idempotent("2026-04"));
        assert!(idempotent("unstable"));
        match decide(&paid(), &request(100, &[]), "2026-04").unwrap() {
            Decision::Create(call) => {
                assert_eq!(call.query, REFUND_CREATE_IDEMPOTENT);
                assert_eq!(
                    call.variables["idempotencyKey"],
                    format!("daifa-refund-{CASE}")
                );
                assert_eq!(call.variables["input"]["transactions"][0]["amount"], "1.00");
            }
            other => panic!("expected a mutation, got {other:?}"),
        }
    }

    #[test]
    fn user_errors_are_permanent_with_their_messages() {
        let body = br#"{"data":{"refundCreate":{"refund":null,"userErrors":[
            {"field":["transactions","0","amount"],"message":"Amount cannot be greater than the refundable amount"},
            {"field":null,"message":"Refund failed."}]}}}"#;
        let err = created_refund(body).unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert_eq!(
            err.message(),
            "shopify refused refundCreate: transactions.0.amount: Amount cannot be greater than the refundable amount; Refund failed."
        );
        assert_eq!(
            created_refund(br#"{"data":{"refundCreate":{"refund":{"id":"gid://shopify/Refund/1"},"userErrors":[]}}}"#)
                .unwrap(),
            "gid://shopify/Refund/1"
        );
        assert_eq!(
            created_refund(br#"{"data":{"refundCreate":null}}"#)
                .unwrap_err()
                .kind(),
            "permanent"
        );
    }

    #[test]
    fn throttling_and_transport_errors_are_transient_and_stop_the_refund() {
        let throttled =
            br#"{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED"}}]}"#;
        assert_eq!(created_refund(throttled).unwrap_err().kind(), "transient");
        let mut calls = 0;
        let err = push(&request(100, &[]), "2025-07", |_| {
            calls += 1;
            Ok(throttled.to_vec())
        })
        .unwrap_err();
        assert_eq!((err.kind(), calls), ("transient", 1));
        let err = push(&request(100, &[]), "2025-07", |_| {
            Err(PluginError::transient("POST … answered 503: "))
        })
        .unwrap_err();
        assert_eq!(err.kind(), "transient");
    }

    #[test]
    fn unknown_order_is_permanent() {
        let err = order_state(br#"{"data":{"order":null}}"#, ORDER).unwrap_err();
        assert_eq!(
            (err.kind(), err.message()),
            (
                "permanent",
                "order `820982911946154508` was not found in the shop"
            )
        );
    }
}
